package redact_test

import (
	"fmt"
	"net/http"

	"github.com/vigilsec/vigil/sdk/redact"
)

func Example() {
	r := redact.Default()
	body := []byte(`{"username":"bob","password":"hunter2","card":"4111 1111 1111 1111"}`)
	fmt.Println(string(r.Prepare(body, redact.DefaultMaxBody, redact.DefaultMaxString)))
	fmt.Println(r.URL("q=shoes&access_token=abc"))
	fmt.Println(r.Headers(http.Header{"Authorization": {"Bearer abc"}, "Accept": {"text/html"}}))
	fmt.Println(r.Text("login failed: password=hunter2"))
	// Output:
	// {"username":"bob","password":"[Filtered]","card":"[Filtered]"}
	// q=shoes&access_token=[Filtered]
	// map[accept:text/html authorization:[Filtered]]
	// login failed: password=[Filtered]
}

func ExampleNew() {
	c := redact.DefaultConfig()
	c.BodyPatterns = append(c.BodyPatterns, `"ssn"\s*:\s*"([^"]*)"`)
	c.Replacement = "***"
	r, err := redact.New(c)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(r.Body([]byte(`{"ssn":"123-45-6789","name":"Alice"}`))))
	// Output: {"ssn":"***","name":"Alice"}
}
