package bulktest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sigv4Check verifies AWS Signature Version 4 the way the service does: same credentials, same
// canonical request, same signature.
type sigv4Check struct {
	creds   aws.Credentials
	region  string
	service string
}

// verify recomputes the signature of r over the headers it names as signed, and compares.
func (c *sigv4Check) verify(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("authorization header %q is not AWS4-HMAC-SHA256", auth)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[0] != c.creds.AccessKeyID || scope[2] != c.region || scope[3] != c.service || scope[4] != "aws4_request" {
		return fmt.Errorf("credential scope %q: want %s/<date>/%s/%s/aws4_request", fields["Credential"], c.creds.AccessKeyID, c.region, c.service)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date %q: %w", r.Header.Get("X-Amz-Date"), err)
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" {
		return errors.New("no X-Amz-Content-Sha256 header")
	}
	if want := sha256Hex(body); hash != want {
		return fmt.Errorf("X-Amz-Content-Sha256 is %s but the body hashes to %s", hash, want)
	}
	if c.creds.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != c.creds.SessionToken {
		return errors.New("session token missing or wrong")
	}

	// Rebuild the request as the client signed it: only the headers it signed.
	re, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return fmt.Errorf("rebuild request: %w", err)
	}
	re.Host = r.Host
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			re.ContentLength = int64(len(body))
		default:
			re.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	re.Header.Del("Authorization")
	if err := v4.NewSigner().SignHTTP(r.Context(), c.creds, re, hash, c.service, c.region, at); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if got := re.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch: got %q, computed %q", auth, got)
	}
	return nil
}
