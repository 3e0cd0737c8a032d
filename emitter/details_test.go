package emitter

import "testing"

// BenchmarkStoredDetails compares parseDetails with reading the same
// details with encoding/json alone (slowDetails), on the details of a
// typical LOGIN event.
func BenchmarkStoredDetails(b *testing.B) {
	raw := `{"auth_method":"openid-connect","auth_type":"code","response_type":"code","redirect_uri":"https://app.example.com/callback","consent":"no_consent_required","code_id":"8d3c6a1e-2f5b-4c9e-9a7d-1b2c3d4e5f60","username":"alice@example.com","response_mode":"query","authSessionParallelExecutions":"0"}`
	for _, c := range []struct {
		name  string
		parse func(string)
	}{
		{"parseDetails", func(s string) { _, _ = parseDetails(s) }},
		{"encoding-json", func(s string) { _, _ = slowDetails(s) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.parse(raw)
			}
		})
	}
}
