package http

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// AnnotationAllowedURLPrefixes on a namespace of the control cluster lists,
// comma-separated, the URL prefixes that tenant's http tasks may call on top
// of the install's (--http-allowed-url-prefixes). Namespaces are
// cluster-scoped, so the platform team sets it, not the tenant:
//
//	kubectl annotate namespace team-a rotor.dev/http-allowed-url-prefixes=https://hooks.team-a.example.com/
const AnnotationAllowedURLPrefixes = "rotor.dev/http-allowed-url-prefixes"

// ReasonURLNotAllowed is the reason of an attempt that asked for (or was
// redirected or pointed to) a URL outside its allowed prefixes.
const ReasonURLNotAllowed = "URLNotAllowed"

// Prefix is one allowed URL prefix, parsed: a URL is under it when scheme
// and host are the same, the port is the same (or the prefix's host ends in
// ':', any port) and the path starts with the prefix's path at a segment
// boundary. Matching parsed parts, not strings, is what keeps
// "http://127.0.0.1:@evil.example/" and "https://api.internal.evil.example/"
// from passing a string-prefix check for "http://127.0.0.1:" or
// "https://api.internal".
type Prefix struct {
	raw, scheme, host, port, path string
	anyPort                       bool
}

func (p Prefix) String() string { return p.raw }

// ParsePrefixes parses a comma-separated list of URL prefixes (blank
// entries are skipped).
func ParsePrefixes(list string) ([]Prefix, error) {
	var out []Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (Prefix, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Prefix{}, fmt.Errorf("URL prefix %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Prefix{}, fmt.Errorf("URL prefix %q: want http:// or https://", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Hostname() == "" {
		return Prefix{}, fmt.Errorf("URL prefix %q: want scheme://host[:port][/path], without user, query or fragment", s)
	}
	return Prefix{raw: s, scheme: u.Scheme, host: strings.ToLower(u.Hostname()), port: port(u),
		anyPort: strings.HasSuffix(u.Host, ":"), path: u.Path}, nil
}

// port is u's port, the scheme's default when it names none.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// covers says whether u is under p.
func (p Prefix) covers(u *url.URL) bool {
	if u.Scheme != p.scheme || strings.ToLower(u.Hostname()) != p.host || (!p.anyPort && port(u) != p.port) {
		return false
	}
	return under(u.Path, p.path)
}

// under says whether the path p is pre or below it, at a segment boundary:
// "/v1" covers "/v1" and "/v1/x", not "/v10".
func under(p, pre string) bool {
	if pre == "" || pre == "/" {
		return true
	}
	if !strings.HasPrefix(p, pre) {
		return false
	}
	return len(p) == len(pre) || strings.HasSuffix(pre, "/") || p[len(pre)] == '/'
}

// notAllowed is the error of a URL outside the allowed prefixes; it ends
// the attempt with ReasonURLNotAllowed wherever it comes from (the task's
// URL, a statusURL, a redirect).
type notAllowed struct{ msg string }

func (e *notAllowed) Error() string { return e.msg }

// policy decides which URLs a namespace's tasks may call.
type policy struct {
	install []Prefix
	// annotations reads a control-cluster namespace's annotations (nil:
	// no per-tenant prefixes).
	annotations func(namespace string) map[string]string
}

// check returns nil if namespace's tasks may call raw, else an error that
// names the URL, what allows URLs and who to ask.
func (p policy) check(namespace, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &notAllowed{fmt.Sprintf("%q is not a URL: %v", raw, err)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &notAllowed{fmt.Sprintf("%q is not an http(s) URL", raw)}
	}
	// A user part is how "http://allowed.example:@evil.example/" would
	// pass a careless check; dot segments are how "/v1/../admin" would
	// leave an allowed path on a server that cleans paths. Neither has a
	// use in a task's URL.
	if u.User != nil {
		return &notAllowed{fmt.Sprintf("%s: URLs with a user part are not allowed (put credentials in headers)", redact(u))}
	}
	if hasDotSegment(u.Path) {
		return &notAllowed{fmt.Sprintf("%s: paths with . or .. segments are not allowed", raw)}
	}
	tenant, terr := p.tenant(namespace)
	all := append(slices.Clone(p.install), tenant...)
	for _, pre := range all {
		if pre.covers(u) {
			return nil
		}
	}
	if terr != nil {
		return &notAllowed{fmt.Sprintf("%s is not under an install-wide allowed URL prefix, and namespace %s's %s annotation is unreadable: %v; ask the platform team to fix it", raw, namespace, AnnotationAllowedURLPrefixes, terr)}
	}
	allowed := make([]string, 0, len(all))
	for _, pre := range all {
		allowed = append(allowed, pre.raw)
	}
	if len(allowed) == 0 {
		return &notAllowed{fmt.Sprintf("%s: http tasks in namespace %s may call no URL (none allowed by --http-allowed-url-prefixes or the namespace's %s annotation); ask the platform team to allow it", raw, namespace, AnnotationAllowedURLPrefixes)}
	}
	return &notAllowed{fmt.Sprintf("%s is not under a URL prefix allowed in namespace %s (%s); ask the platform team to allow it (--http-allowed-url-prefixes, or the namespace's %s annotation)", raw, namespace, strings.Join(allowed, ", "), AnnotationAllowedURLPrefixes)}
}

func (p policy) tenant(namespace string) ([]Prefix, error) {
	if p.annotations == nil {
		return nil, nil
	}
	v := p.annotations(namespace)[AnnotationAllowedURLPrefixes]
	if v == "" {
		return nil, nil
	}
	return ParsePrefixes(v)
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// redact drops the user part of u for messages: it may hold a password.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// namespaceKey carries an attempt's namespace to the client's redirect check.
type namespaceKey struct{}

func withNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, namespaceKey{}, ns)
}

func namespaceOf(ctx context.Context) string {
	ns, _ := ctx.Value(namespaceKey{}).(string)
	return ns
}

// isNotAllowed reports whether err (a client error, say) comes from the policy.
func isNotAllowed(err error) (*notAllowed, bool) {
	var na *notAllowed
	ok := errors.As(err, &na)
	return na, ok
}
