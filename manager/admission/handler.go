package admission

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
)

var reviews = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "rotor_admission_reviews_total",
	Help: "Admission reviews answered by the webhook, by kind, operation and result (allowed, denied, error: the review itself did not decode).",
}, []string{"kind", "operation", "result"})

func init() { prometheus.MustRegister(reviews) }

// Handler serves Review over HTTP as the apiserver calls it: a POSTed
// admission.k8s.io/v1 AdmissionReview, answered with one.
type Handler struct {
	Options Options
	Logger  *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	max := h.Options.MaxObjectBytes
	if max <= 0 {
		max = DefaultMaxObjectBytes
	}
	// An update carries the object twice; past that, refuse to read on
	// (the apiserver itself caps requests at 3 MiB).
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(3*max+64<<10)))
	if err != nil {
		reviews.WithLabelValues("", "", "error").Inc()
		http.Error(w, "read the AdmissionReview: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	ar, err := DecodeReview(body)
	if err != nil {
		reviews.WithLabelValues("", "", "error").Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	start := time.Now()
	resp := Review(ar.Request, h.Options)
	result := "allowed"
	if !resp.Allowed {
		result = "denied"
		if h.Logger != nil {
			h.Logger.Info("admission denied", "kind", ar.Request.Kind.Kind, "namespace", ar.Request.Namespace,
				"workflow", ar.Request.Name, "operation", ar.Request.Operation, "user", ar.Request.UserInfo.Username,
				"reason", resp.Result.Reason, "took", time.Since(start))
		}
	}
	reviews.WithLabelValues(ar.Request.Kind.Kind, string(ar.Request.Operation), result).Inc()
	out := admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// DecodeReview reads an admission.k8s.io/v1 AdmissionReview with a request.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		return nil, fmt.Errorf("the body is not an AdmissionReview: %w", err)
	}
	if ar.APIVersion != admissionv1.SchemeGroupVersion.String() || ar.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("want an %s AdmissionReview, got kind %q apiVersion %q: set admissionReviewVersions: [v1] in the webhook configuration",
			admissionv1.SchemeGroupVersion, ar.Kind, ar.APIVersion)
	}
	if ar.Request == nil {
		return nil, fmt.Errorf("the AdmissionReview has no request")
	}
	return &ar, nil
}
