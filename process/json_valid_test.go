package process

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzJSONValidatorAgreesWithEncodingJSON: the json handler's validator accepts exactly what
// encoding/json.Valid accepts (nesting beyond encoding/json's own depth limit of 10,000 aside,
// which RFC 8259 leaves to implementations).
func FuzzJSONValidatorAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, `[1,2,3]`, `"x"`, `1e5`, `-0.5E-3`, ` true `, `null`, `{"a":"\u00e9\n"}`,
		`{"a":}`, `[1,]`, `01`, `1.`, `.5`, `"\x"`, `"\u12"`, "\"a\x01\"", `{"a" 1}`, `[] []`, ``, ` `,
		`{"a":[{"b":null}],"c":{"d":-1.5e+10}}`, `nul`, `tru`, `-`, `1e`, `[`, `{"a":1,}`, "\"caf\xe9\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Count(string(data), "[")+strings.Count(string(data), "{") > 10000 {
			t.Skip("deeper than encoding/json's nesting limit")
		}
		if got, want := gjson.ValidBytes(data), json.Valid(data); got != want {
			t.Fatalf("%q: gjson.ValidBytes %v, encoding/json.Valid %v", data, got, want)
		}
	})
}

// BenchmarkJSONCheck: the json handler's check on a 1 KiB event, against encoding/json.Valid
// plus the same UTF-8 check.
func BenchmarkJSONCheck(b *testing.B) {
	rec := []byte(`{"id":"5f0c6b1e-8a53-4a8e-9c1d-2d3e4f5a6b7c","time":"2026-01-02T03:04:05.678Z","event":"purchase",` +
		`"user":{"id":12345,"name":"Ada Lovelace","email":"ada@example.com","tags":["vip","early","beta"]},` +
		`"items":[{"sku":"A-1","qty":2,"price":9.99},{"sku":"B-22","qty":1,"price":129.5},{"sku":"C-333","qty":5,"price":0.5}],` +
		`"message":"` + strings.Repeat("lorem ipsum dolor sit amet café ", 20) + `","ok":true,"n":null}`)
	b.Run("gjson", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if err := checkJSON(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if !json.Valid(rec) || invalidUTF8(rec) >= 0 {
				b.Fatal("invalid")
			}
		}
	})
}
