package harness

import (
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WriteKubeconfig writes a kubeconfig of the control cluster for one user
// authenticating with auth (a bearer token, a client certificate, or
// nothing at all) into the test's temporary directory.
func (e *Env) WriteKubeconfig(t testing.TB, name string, auth clientcmdapi.AuthInfo) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["control"] = &clientcmdapi.Cluster{Server: e.Control.Server, CertificateAuthorityData: e.CAPEM}
	cfg.AuthInfos[name] = &auth
	cfg.Contexts["control"] = &clientcmdapi.Context{Cluster: "control", AuthInfo: name}
	cfg.CurrentContext = "control"
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
