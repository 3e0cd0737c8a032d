package main

import (
	"errors"
	"fmt"
	"testing"
)

// TestRejectedGrantAcceptsEachVersionsRefusalOnly pins what the seed takes
// for a refused direct grant: 401 (Keycloak up to 26.5) or 400 (26.7) with
// the OAuth error invalid_grant; any other status or error is not a refusal
// of the credentials.
func TestRejectedGrantAcceptsEachVersionsRefusalOnly(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&httpError{status: 401, body: `{"error":"invalid_grant","error_description":"Invalid user credentials"}`}, true},
		{&httpError{status: 400, body: `{"error":"invalid_grant","error_description":"Invalid user credentials"}`}, true},
		{fmt.Errorf("direct grant: %w", &httpError{status: 400, body: `{"error":"invalid_grant"}`}), true},
		{&httpError{status: 400, body: `{"error":"invalid_request"}`}, false},
		{&httpError{status: 401, body: `{"error":"unauthorized_client"}`}, false},
		{&httpError{status: 500, body: `{"error":"invalid_grant"}`}, false},
		{&httpError{status: 401, body: `<html>`}, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := rejectedGrant(tt.err); got != tt.want {
			t.Errorf("rejectedGrant(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
