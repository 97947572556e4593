package scram

import (
	"strings"
	"testing"

	"mellium.im/sasl"
)

// FuzzServer feeds arbitrary client-first and client-final messages to the
// RFC vector servers: no panic, only sentinel errors, and success only with a
// username and a v= reply.
func FuzzServer(f *testing.F) {
	for _, v := range vectors {
		f.Add([]byte(v.clientFirst), []byte(v.clientFinal))
		f.Add([]byte(v.clientFirst), []byte(strings.Replace(v.clientFinal, "c=biws", "c=eSws", 1)))
		f.Add([]byte(strings.Replace(v.clientFirst, "n,,", "y,,", 1)), []byte(v.clientFinal))
		f.Add([]byte(strings.Replace(v.clientFirst, "n,,", "p=tls-exporter,a=user,", 1)), []byte(v.clientFinal))
		f.Add([]byte(""), []byte(v.clientFirst))
	}
	f.Add([]byte("n,,n=us=2Cer,r=abc,x=1"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("n,,m=x,n=user,r=abc"), []byte(""))
	f.Add([]byte("n,a=u=3D,n=u=3D,r=\x7e"), []byte("c=,r=,p="))

	opts := make([]Options, len(vectors))
	for i := range vectors {
		opts[i] = vectorOptions(f, i)
		opts[i].PlusAdvertised = i == 1
	}
	f.Fuzz(func(t *testing.T, first, final []byte) {
		for i, v := range vectors {
			var res Result
			m, _ := Mechanism(v.mech, opts[i], &res)
			srv := sasl.NewServer(m, nil)
			for _, in := range [][]byte{first, final} {
				more, out, err := srv.Step(in)
				if err != nil {
					if !isSentinel(err) {
						t.Fatalf("%s: non-sentinel error %v", v.mech, err)
					}
					if res.Username != "" {
						t.Fatalf("%s: Username set on failure", v.mech)
					}
					break
				}
				if !more {
					if res.Username == "" || !strings.HasPrefix(string(out), "v=") {
						t.Fatalf("%s: success with %q, %q", v.mech, res.Username, out)
					}
				}
			}
		}
	})
}
