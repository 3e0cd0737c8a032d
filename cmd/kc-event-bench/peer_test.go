package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestSinkCountsDistinctEventsOfBothPayloadsAndSurvivesARestart(t *testing.T) {
	sk, err := newSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sk.stop()
	postBody := func(body string) error {
		resp, err := http.Post(sk.url("/any"), "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST %s: HTTP %d", body, resp.StatusCode)
		}
		return nil
	}
	for _, body := range []string{
		`{"id":"kc-1","time":100,"type":"LOGIN","uid":1574457156782030848}`, // ours: id
		`{"id":"kc-1","time":100,"type":"LOGIN","uid":1574457156782030849}`, // delivered again
		`{"id":"kc-2","time":300,"uid":"p2-9","type":"access.LOGIN"}`,       // Phase Two: uid
		`{"time":150}`, // no id: not counted
		`not json`,
	} {
		if err := postBody(body); err != nil {
			t.Fatal(err)
		}
	}
	sk.stop()
	if err := postBody(`{"id":"kc-3","time":200}`); err == nil {
		t.Fatal("the stopped sink accepted a request")
	}
	if err := sk.start(); err != nil {
		t.Fatal(err)
	}
	if err := postBody(`{"id":"kc-3","time":200}`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to int64
		want     int
	}{{0, 1000, 3}, {100, 200, 2}, {201, 1000, 1}, {400, 500, 0}} {
		if got := sk.count(tc.from, tc.to); got != tc.want {
			t.Errorf("count(%d, %d) = %d, want %d", tc.from, tc.to, got, tc.want)
		}
	}
}
