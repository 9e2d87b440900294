package expr

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rotor-dev/rotor/controller/template"
)

type tok struct {
	kind string // "op", "num", "str", "ref", "word", "(", ")"
	text string
	off  int
}

var twoCharOps = map[string]bool{"==": true, "!=": true, "<=": true, ">=": true, "&&": true, "||": true}

type parser struct {
	src  string
	toks []tok
	pos  int
}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')':
			p.toks = append(p.toks, tok{kind: string(c), text: string(c), off: i})
			i++
		case strings.HasPrefix(s[i:], "{{"):
			end := strings.Index(s[i:], "}}")
			if end < 0 {
				return fmt.Errorf("condition %q: unterminated {{ at offset %d", s, i)
			}
			p.toks = append(p.toks, tok{kind: "ref", text: s[i : i+end+2], off: i})
			i += end + 2
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return fmt.Errorf("condition %q: unterminated string at offset %d", s, i)
			}
			p.toks = append(p.toks, tok{kind: "str", text: s[i : j+1], off: i})
			i = j + 1
		case strings.ContainsRune("=!<>&|", rune(c)):
			op := string(c)
			if i+1 < len(s) && twoCharOps[s[i:i+2]] {
				op = s[i : i+2]
			}
			if op == "=" || op == "&" || op == "|" {
				return fmt.Errorf("condition %q: %q at offset %d: did you mean %s%s?", s, op, i, op, op)
			}
			p.toks = append(p.toks, tok{kind: "op", text: op, off: i})
			i += len(op)
		case c >= '0' && c <= '9', c == '-' || c == '.':
			j := i + 1
			for j < len(s) {
				d := s[j]
				if (d >= '0' && d <= '9') || d == '.' || d == 'e' || d == 'E' ||
					((d == '-' || d == '+') && (s[j-1] == 'e' || s[j-1] == 'E')) {
					j++
					continue
				}
				break
			}
			p.toks = append(p.toks, tok{kind: "num", text: s[i:j], off: i})
			i = j
		case c >= 'a' && c <= 'z':
			j := i
			for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
				j++
			}
			p.toks = append(p.toks, tok{kind: "word", text: s[i:j], off: i})
			i = j
		default:
			return fmt.Errorf("condition %q: unexpected %q at offset %d", s, c, i)
		}
	}
	return nil
}

func (p *parser) peek() *tok {
	if p.pos < len(p.toks) {
		return &p.toks[p.pos]
	}
	return nil
}

func (p *parser) or() (node, error) { return p.binary(p.and, "||") }

func (p *parser) and() (node, error) { return p.binary(p.unary, "&&") }

func (p *parser) binary(next func() (node, error), ops ...string) (node, error) {
	l, err := next()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t != nil && t.kind == "op" && contains(ops, t.text); t = p.peek() {
		p.pos++
		r, err := next()
		if err != nil {
			return nil, err
		}
		l = bin{op: t.text, l: l, r: r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if t := p.peek(); t != nil && t.kind == "op" && t.text == "!" {
		p.pos++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return not{x: x}, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (node, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t != nil && t.kind == "op" && contains([]string{"==", "!=", "<", "<=", ">", ">="}, t.text) {
		p.pos++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		return bin{op: t.text, l: l, r: r}, nil
	}
	return l, nil
}

func (p *parser) operand() (node, error) {
	t := p.peek()
	if t == nil {
		return nil, fmt.Errorf("condition %q: ends where a value was expected", p.src)
	}
	p.pos++
	switch t.kind {
	case "(":
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.peek(); c == nil || c.kind != ")" {
			return nil, fmt.Errorf("condition %q: missing ) for ( at offset %d", p.src, t.off)
		}
		p.pos++
		return n, nil
	case "num":
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("condition %q: bad number %q at offset %d", p.src, t.text, t.off)
		}
		return lit{v: f}, nil
	case "str":
		body := t.text[1 : len(t.text)-1]
		body = strings.ReplaceAll(body, `\`+t.text[:1], t.text[:1])
		return lit{v: strings.ReplaceAll(body, `\\`, `\`)}, nil
	case "word":
		switch t.text {
		case "true":
			return lit{v: true}, nil
		case "false":
			return lit{v: false}, nil
		case "null":
			return lit{v: nil}, nil
		}
		return nil, fmt.Errorf("condition %q: unknown word %q at offset %d: quote strings, use {{...}} for values", p.src, t.text, t.off)
	case "ref":
		tpl, err := template.Parse(t.text)
		if err != nil {
			return nil, fmt.Errorf("condition %q: %w", p.src, err)
		}
		r, ok := tpl.Single()
		if !ok {
			return nil, fmt.Errorf("condition %q: bad reference %s", p.src, t.text)
		}
		return ref{r: r}, nil
	}
	return nil, fmt.Errorf("condition %q: unexpected %q at offset %d", p.src, t.text, t.off)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
