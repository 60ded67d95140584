package opensearch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	opensearchgo "github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/signer/awsv2"

	"github.com/shardhose/shardhose/config"
)

// newClient builds the opensearch-go client for cfg: the endpoints, basic auth or a SigV4
// signer, and TLS. The client's own retries are off: the sink retries on its clock, document by
// document, within the retry duration.
func newClient(cfg config.OpenSearchSink, opts Options) (*opensearchgo.Client, error) {
	var problems []error
	for i, e := range cfg.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			problems = append(problems, fmt.Errorf("endpoints[%d] %q: want http:// or https:// with a host and no credentials", i, e))
		}
	}
	oc := opensearchgo.Config{
		Addresses:            cfg.Endpoints,
		DisableRetry:         true,
		DiscoverNodesOnStart: new(false),
	}
	switch a := cfg.Auth; a.Type {
	case "", "none":
	case "basic":
		pw, err := resolvePassword(a)
		if err != nil {
			problems = append(problems, err)
		}
		if a.Username == "" {
			problems = append(problems, errors.New("auth.username: basic auth needs a user name"))
		}
		oc.Username, oc.Password = a.Username, pw
	case "sigv4":
		region := a.Region
		if region == "" {
			region = opts.Region
		}
		service := a.Service
		if service == "" {
			service = "es"
		}
		switch {
		case opts.AWSCredentials == nil:
			problems = append(problems, errors.New("auth.type sigv4: no AWS credentials given"))
		case region == "":
			problems = append(problems, errors.New("auth.type sigv4: no region: set auth.region or aws.region"))
		case service != "es" && service != "aoss":
			problems = append(problems, fmt.Errorf("auth.service %q: use es or aoss", service))
		default:
			creds := opts.AWSCredentials
			if _, cached := creds.(*aws.CredentialsCache); !cached {
				// The signer asks for credentials on every request.
				creds = aws.NewCredentialsCache(creds)
			}
			sig, err := awsv2.NewSignerWithService(aws.Config{Region: region, Credentials: creds}, service)
			if err != nil {
				problems = append(problems, fmt.Errorf("auth.type sigv4: %w", err))
			}
			oc.Signer = sig
		}
	default:
		problems = append(problems, fmt.Errorf("auth.type %q: use none, basic or sigv4", a.Type))
	}
	tr, err := transport(cfg.TLS, opts.HTTPTransport)
	if err != nil {
		problems = append(problems, err)
	}
	oc.Transport = tr
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	c, err := opensearchgo.NewClient(oc)
	if err != nil {
		return nil, fmt.Errorf("create opensearch client: %w", err)
	}
	return c, nil
}

// resolvePassword returns the basic-auth password from the one place cfg names.
func resolvePassword(a config.OpenSearchAuth) (string, error) {
	set := 0
	for _, s := range []string{a.Password, a.PasswordEnv, a.PasswordFile} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		return "", errors.New("auth: basic auth needs exactly one of password, password_env and password_file")
	}
	switch {
	case a.PasswordEnv != "":
		pw, ok := os.LookupEnv(a.PasswordEnv)
		if !ok || pw == "" {
			return "", fmt.Errorf("auth.password_env: environment variable %s is not set or empty", a.PasswordEnv)
		}
		return pw, nil
	case a.PasswordFile != "":
		b, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("auth.password_file: %w", err)
		}
		pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if pw == "" {
			return "", fmt.Errorf("auth.password_file: %s is empty", a.PasswordFile)
		}
		return pw, nil
	}
	return a.Password, nil
}

// transport returns base (or a clone of http.DefaultTransport) with the TLS options applied. A
// base that is not an *http.Transport is used as is, and TLS options are then an error.
func transport(t config.OpenSearchTLS, base http.RoundTripper) (http.RoundTripper, error) {
	if t.CAFile == "" && !t.InsecureSkipVerify {
		if base == nil {
			return http.DefaultTransport.(*http.Transport).Clone(), nil
		}
		return base, nil
	}
	var ht *http.Transport
	switch b := base.(type) {
	case nil:
		ht = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		ht = b.Clone()
	default:
		return nil, fmt.Errorf("tls: options need an *http.Transport, got %T", base)
	}
	if ht.TLSClientConfig == nil {
		ht.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		ht.TLSClientConfig.RootCAs = pool
	}
	ht.TLSClientConfig.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // opt-in, warned about at start-up
	return ht, nil
}
