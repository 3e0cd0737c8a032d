package deadletter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// record is dead letter i of a test: uid 1000+i, its body names the uid.
func record(i int) Record {
	uid := int64(1000 + i)
	return Record{
		UID: uid, Kind: "Event", ID: fmt.Sprintf("kc-%d", i), RealmID: "r1", Type: "LOGIN", Time: 1700000000000 + int64(i),
		Status: 400, Reason: "target answered 400", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Body: fmt.Sprintf(`{"uid":%d,"type":"LOGIN","pad":%q}`, uid, strings.Repeat("x", 100)),
	}
}

func openFile(t *testing.T, maxBytes int64) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	f, err := Open(path, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	return f, path
}

func appendAll(t *testing.T, f *File, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := f.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// uidsIn returns the uids of the records waiting in the dead-letter file at
// path, oldest first.
func uidsIn(t *testing.T, path string) []int64 {
	t.Helper()
	files, err := Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var uids []int64
	for _, file := range files {
		if err := scan(file, func(r Record, ok bool) {
			if ok {
				uids = append(uids, r.UID)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return uids
}

func uidRange(from, to int) []int64 {
	var s []int64
	for i := from; i < to; i++ {
		s = append(s, int64(1000+i))
	}
	return s
}

func TestOpenCreatesNothingAndTheFirstAppendCreatesTheFileWithMode0600(t *testing.T) {
	f, path := openFile(t, 1<<20)
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Fatalf("Open left %d entries in the directory, want none", len(entries))
	}
	if err := f.Append(record(0)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after the first record: %v, %v; want a file with mode 0600 (bodies hold personal data)", fi, err)
	}
	if got := uidsIn(t, path); !slices.Equal(got, uidRange(0, 1)) {
		t.Errorf("records %v", got)
	}
}

func TestOpenRefusesAPathItCouldNotWrite(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "a-file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"directory missing", filepath.Join(dir, "no", "such", "dead.jsonl"), "not writable"},
		{"directory is a file", filepath.Join(notDir, "dead.jsonl"), "not a directory"},
		{"path is a directory", dir, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, 1<<20)
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%s) = %v, want an error naming the path and %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestAppendRotatesAtTheSizeLimitIntoNumberedPartsOldestFirst(t *testing.T) {
	line := int64(len(mustLine(t, record(0))))
	f, path := openFile(t, 3*line+line/2) // three records per file
	appendAll(t, f, 0, 35)
	parts, err := Parts(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 11 || parts[9] != path+".10" || parts[10] != path+".11" {
		t.Fatalf("parts %v, want %s.1 ... %s.11 in numeric order", parts, path, path)
	}
	for _, p := range append(parts, path) {
		if n, _ := fileSize(p); n > 3*line+line/2 {
			t.Errorf("%s has %d bytes, over the limit", p, n)
		}
	}
	if got := uidsIn(t, path); !slices.Equal(got, uidRange(0, 35)) {
		t.Errorf("records across the parts %v, want the 35 in order", got)
	}
	var want int64
	for i := range 35 {
		b, _ := json.Marshal(record(i))
		want += int64(len(b)) + 1
	}
	if size, err := Size(path); err != nil || size != want {
		t.Errorf("Size = %d, %v; want %d", size, err, want)
	}
}

func mustLine(t *testing.T, r Record) []byte {
	t.Helper()
	var b bytes.Buffer
	f, path := openFile(t, 1<<20)
	if err := f.Append(r); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	b.Write(data)
	return b.Bytes()
}

func TestAppendEndsALineThatACrashLeftCut(t *testing.T) {
	f, path := openFile(t, 1<<20)
	appendAll(t, f, 0, 1)
	cut := mustLine(t, record(1))
	if err := os.WriteFile(path, append(mustLine(t, record(0)), cut[:len(cut)/2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	appendAll(t, f, 2, 3)
	s, err := Summarize(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 2 || s.Unsendable != 1 || s.First.UID != 1000 || s.Last.UID != 1002 {
		t.Errorf("summary %+v, want records 1000 and 1002 and the cut line kept apart", s)
	}
}

func TestSummarizeCountsTheRecordsTheirTimesAndStatuses(t *testing.T) {
	f, path := openFile(t, 1024)
	for i := range 7 {
		r := record(i)
		if i%3 == 0 {
			r.Status = 422
		}
		if err := f.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Summarize(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Count != 7 || s.First.UID != 1000 || s.Last.UID != 1006 || s.Statuses[400] != 4 || s.Statuses[422] != 3 || len(s.Files) < 2 {
		t.Fatalf("summary %+v", s)
	}
	var out strings.Builder
	if err := s.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"count      7", "first      2026-01-02T03:04:05Z  uid 1000", "last       2026-01-02T03:04:11Z  uid 1006", "statuses   400: 4, 422: 3", path + ".1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list output lacks %q:\n%s", want, out.String())
		}
	}
	empty, err := Summarize(filepath.Join(t.TempDir(), "none.jsonl"))
	if err != nil || empty.Count != 0 {
		t.Errorf("a missing file: %+v, %v; want nothing", empty, err)
	}
}

// target records what a replay sent; refuse and fail pick the uids it
// refuses (ErrRefused) and the one it fails on (stops the replay).
type target struct {
	mu     sync.Mutex
	got    []int64
	refuse map[int64]bool
	fail   int64
}

func (tg *target) send(_ context.Context, r Record) error {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	switch {
	case r.UID == tg.fail:
		return errors.New("target down")
	case tg.refuse[r.UID]:
		return fmt.Errorf("uid %d: %w", r.UID, ErrRefused)
	}
	if want := fmt.Sprintf(`{"uid":%d,`, r.UID); !strings.HasPrefix(string(r.Payload()), want) {
		return fmt.Errorf("body %q of uid %d", r.Payload(), r.UID)
	}
	tg.got = append(tg.got, r.UID)
	return nil
}

func TestReplaySendsEveryRecordInOrderAndRemovesEveryFile(t *testing.T) {
	f, path := openFile(t, 2048)
	appendAll(t, f, 0, 40)
	tg := &target{}
	st, err := Replay(context.Background(), path, tg.send)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tg.got, uidRange(0, 40)) || st != (Stats{Delivered: 40}) {
		t.Errorf("sent %v, stats %+v; want the 40 in order", tg.got, st)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("left %v in the directory, want nothing", entries)
	}
}

func TestReplayKeepsRefusedRecordsGoesOnAndStopsAtAFailureKeepingTheRest(t *testing.T) {
	f, path := openFile(t, 2048)
	appendAll(t, f, 0, 30)
	tg := &target{refuse: map[int64]bool{1003: true, 1004: true}, fail: 1020}
	st, err := Replay(context.Background(), path, tg.send)
	if err == nil || !strings.Contains(err.Error(), "target down") {
		t.Fatalf("Replay = %v, want the failure that stopped it", err)
	}
	want := append(uidRange(0, 3), uidRange(5, 20)...)
	if !slices.Equal(tg.got, want) {
		t.Errorf("sent %v, want %v", tg.got, want)
	}
	left := append([]int64{1003, 1004}, uidRange(20, 30)...)
	if got := uidsIn(t, path); !slices.Equal(got, left) {
		t.Errorf("left in the files %v, want %v", got, left)
	}
	if st != (Stats{Delivered: 18, Refused: 2, Left: 12}) {
		t.Errorf("stats %+v", st)
	}
	// The next replay sends what is left, the refused ones again.
	tg2 := &target{}
	if _, err := Replay(context.Background(), path, tg2.send); err != nil || !slices.Equal(tg2.got, left) {
		t.Errorf("second replay sent %v (%v), want %v", tg2.got, err, left)
	}
}

// TestReplaySkipsTheLinesAKilledReplayMarkedDelivered replays a file where
// an earlier replay, killed before its compaction, marked lines delivered:
// they are not sent again, and the compaction removes them.
func TestReplaySkipsTheLinesAKilledReplayMarkedDelivered(t *testing.T) {
	f, path := openFile(t, 1<<20)
	appendAll(t, f, 0, 6)
	data, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(data, []byte("\n"))
	var off int64
	for i, l := range lines {
		if i == 0 || i == 2 {
			fd, _ := os.OpenFile(path, os.O_RDWR, 0)
			if err := markDelivered(fd, off); err != nil {
				t.Fatal(err)
			}
			fd.Close()
		}
		off += int64(len(l))
	}
	s, _ := Summarize(path)
	if s.Count != 4 {
		t.Errorf("list counts %d, want the 4 not marked", s.Count)
	}
	tg := &target{fail: 1004}
	if _, err := Replay(context.Background(), path, tg.send); err == nil {
		t.Fatal("want the failure at uid 1004")
	}
	if want := []int64{1001, 1003}; !slices.Equal(tg.got, want) {
		t.Errorf("sent %v, want %v", tg.got, want)
	}
	parts, _ := Parts(path)
	data, _ = os.ReadFile(parts[0])
	if bytes.Count(data, []byte("\n")) != 2 || data[0] != '{' {
		t.Errorf("compacted part:\n%s\nwant the two records left, no marked line", data)
	}
}

// TestReplayWhileTheEmitterAppendsLosesNothingAndSendsNothingTwice appends
// records from another goroutine, as the running emitter would, while
// replays run: every record is sent once or still waits in the files.
func TestReplayWhileTheEmitterAppendsLosesNothingAndSendsNothingTwice(t *testing.T) {
	f, path := openFile(t, 4096)
	const n = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := f.Append(record(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	tg := &target{}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		if _, err := Replay(context.Background(), path, tg.send); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(tg.got, uidRange(0, n)) {
		t.Errorf("sent %d records (%v...), want each of the %d once, in order", len(tg.got), tg.got[:min(len(tg.got), 10)], n)
	}
	if left := uidsIn(t, path); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

func TestReplayRefusesAPartThatAnotherReplayHolds(t *testing.T) {
	f, path := openFile(t, 1<<20)
	appendAll(t, f, 0, 3)
	unlock, _ := lockDir(filepath.Dir(path))
	part, err := rotate(path)
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	held, err := openPart(part)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	tg := &target{}
	if _, err := Replay(context.Background(), path, tg.send); err == nil || !strings.Contains(err.Error(), "another replay") {
		t.Errorf("Replay while another holds %s = %v, want an error saying so", part, err)
	}
	if len(tg.got) != 0 {
		t.Errorf("sent %v", tg.got)
	}
}

// BenchmarkReplay measures a replay of 1,000 records (about 220 bytes each)
// to a target that takes them at once: the cost of the file's work, a
// synced one-byte mark per record.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		path := filepath.Join(dir, fmt.Sprintf("dead-%d.jsonl", i))
		f, err := Open(path, 64<<20)
		if err != nil {
			b.Fatal(err)
		}
		for j := range 1000 {
			if err := f.Append(record(j)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		st, err := Replay(context.Background(), path, func(context.Context, Record) error { return nil })
		if err != nil || st.Delivered != 1000 {
			b.Fatal(st, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/record")
}
