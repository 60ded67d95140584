package firehose

import (
	"errors"

	"github.com/aws/smithy-go"
)

// errorCode returns the AWS error code err carries (for example ResourceNotFoundException), or
// "" when it carries none (a network error, a cancelled context).
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// errorMessage returns the AWS error message err carries, or err's text when it carries none.
func errorMessage(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorMessage() != "" {
		return api.ErrorMessage()
	}
	return err.Error()
}

// isAccessCode reports whether code says the credentials may not do what was asked, or are not
// valid.
func isAccessCode(code string) bool {
	switch code {
	case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidSignatureException",
		"ExpiredTokenException", "ExpiredToken", "IncompleteSignature", "MissingAuthenticationToken":
		return true
	}
	return false
}

// operatorHint decides which failed PutRecordBatch calls need an operator rather than patience:
// for those it returns what to look at, which the sink's outage lines carry as "action" (logged at Error); for
// the others (throttling, 5xx, network errors) it returns "". Every failure is retried either
// way: the delivery stream may be being created, or a policy being fixed, and the sink must not
// drop the records meanwhile.
func operatorHint(code string) string {
	switch {
	case code == "ResourceNotFoundException":
		return "the delivery stream does not exist in the client's region and account (it may still be being created)"
	case isAccessCode(code):
		return "the credentials may not put records to the delivery stream (grant firehose:PutRecordBatch) or are not valid"
	case code == "InvalidKMSResourceException":
		return "the delivery stream's KMS key cannot be used"
	case code == "InvalidArgumentException":
		return "the request was rejected as invalid (is the delivery stream of type DirectPut?)"
	case code == "InvalidSourceException":
		return "the delivery stream's source is not valid"
	}
	return ""
}
