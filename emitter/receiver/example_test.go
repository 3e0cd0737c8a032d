package receiver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// A receiver of your own: decode the body into your type, handle it, and
// let the handler answer. Here the decoder reads only the uid and the type
// of the JSON format; cmd/kc-event-receiver uses emitter.DecodePayload.
func ExampleNewHandler() {
	type login struct {
		UID  int64  `json:"uid"`
		Type string `json:"type"`
	}
	h, err := receiver.NewHandler(receiver.Config[login]{
		Decode: func(body []byte) (login, error) {
			var e login
			err := json.Unmarshal(body, &e)
			return e, err
		},
		Handle: func(ctx context.Context, e login) error {
			fmt.Println("handled", e.Type, e.UID)
			return nil // the handler answers 200 only now
		},
		Password: "from-a-secret-store",
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/event/receiver", strings.NewReader(`{"type":"LOGIN","uid":42}`))
	req.SetBasicAuth("keycloak-0", "from-a-secret-store")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// handled LOGIN 42
	// 200 OK
}
