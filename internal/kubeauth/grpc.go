package kubeauth

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
)

// Rules says what a gRPC call asks to do. req is nil for a streaming call
// (its attributes come from the method alone). ok false means the method is
// not covered, and the call is refused: a method added without a rule is
// closed, not open.
type Rules func(fullMethod string, req any) (attrs Attributes, ok bool)

// UnaryInterceptor authorizes every unary call with rules.
func (g *Guard) UnaryInterceptor(rules Rules) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := g.authorizeCall(ctx, rules, info.FullMethod, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authorizes every streaming call with rules.
func (g *Guard) StreamInterceptor(rules Rules) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := g.authorizeCall(ss.Context(), rules, info.FullMethod, nil); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func (g *Guard) authorizeCall(ctx context.Context, rules Rules, method string, req any) error {
	attrs, ok := rules(method, req)
	if !ok {
		return status.Errorf(codes.PermissionDenied, "%s is not authorized for anyone: it has no authorization rule", method)
	}
	d := g.Decide(ctx, CallCredential(ctx), attrs)
	if d.Outcome != Allowed && g.Logger != nil {
		g.Logger.Info("admin call refused", "method", method, "verb", attrs.Verb, "resource", attrs.Resource,
			"namespace", attrs.Namespace, "name", attrs.Name, "reason", d.Message)
	}
	switch d.Outcome {
	case Allowed:
		return nil
	case Unauthenticated:
		return status.Error(codes.Unauthenticated, d.Message)
	case Forbidden:
		return status.Error(codes.PermissionDenied, d.Message)
	default:
		return status.Error(codes.Unavailable, d.Message)
	}
}

// CallCredential reads a call's credential: a client certificate the TLS
// handshake verified against the client CA wins (the user is its CN, the
// groups its O, as for the apiserver); else the bearer token of the
// authorization metadata.
func CallCredential(ctx context.Context) Credential {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			u := certUser(ti.State.VerifiedChains[0][0])
			return Credential{User: &u}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, h := range md.Get("authorization") {
		if t, ok := bearer(h); ok {
			return Credential{Token: t}
		}
	}
	return Credential{}
}

func certUser(c *x509.Certificate) authnv1.UserInfo {
	return authnv1.UserInfo{Username: c.Subject.CommonName, Groups: append([]string{"system:authenticated"}, c.Subject.Organization...)}
}
