package localcluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// user is an identity the apiservers accept through the static token file.
// Each Rotor process gets its own, so the audit log can tell them apart.
type user struct {
	Name   string
	Token  string
	Groups []string
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeTokenFile(path string, users []user) error {
	sort.Slice(users, func(i, j int) bool { return users[i].Name < users[j].Name })
	var sb strings.Builder
	for _, u := range users {
		fmt.Fprintf(&sb, "%s,%s,%s,\"%s\"\n", u.Token, u.Name, u.Name, strings.Join(u.Groups, ","))
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}

// kubeconfig renders a kubeconfig for one cluster and one user.
func kubeconfig(cluster, server string, caPEM []byte, u user) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[u.Name] = &clientcmdapi.AuthInfo{Token: u.Token}
	cfg.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: u.Name}
	cfg.CurrentContext = cluster
	return clientcmd.Write(*cfg)
}

func restConfigFromFile(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}
