package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The kafka case (not by default: it needs the broker of scripts/kafka.sh,
// --kafka): the emitter, target kafka://, drains --backlog events with
// --once, then tails events inserted at --rate for --rateSeconds. The
// latency is from the insert's commit to the broker's append (the topic
// stamps records with LogAppendTime).

// kafkaResult is one run of the kafka case.
type kafkaResult struct {
	what      string // "backlog" or "live"
	n         int
	rate      int // events/s inserted; 0: a backlog
	elapsed   time.Duration
	delivered int
	p50, p99  time.Duration
	pMax      time.Duration
	proc      procFigures
	// pgCPU and brokerCPU are what PostgreSQL and the broker used during
	// a backlog's drain: the cores the emitter shares with them.
	pgCPU, brokerCPU time.Duration
	load             float64
}

func (k kafkaResult) perSecond() float64 { return perSecond(int64(k.delivered), k.elapsed) }

// kafkaSetting is the emitter setting of the kafka case.
var kafkaSetting = setting{format: "JSON", overflow: "block", concurrency: 1}

func (b *bench) kafkaCase(ctx context.Context) error {
	if b.cfg.kafka == "" {
		return errors.New("the kafka case needs a broker: --kafka host:port (scripts/kafka.sh start; eval \"$(scripts/kafka.sh env)\" sets KCEE_TEST_KAFKA_BROKERS)")
	}
	brokers := strings.Split(b.cfg.kafka, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	db, _, err := b.backlogDB(ctx, b.cfg.backlog)
	if err != nil {
		return err
	}
	topic, err := createTopic(ctx, cl, "kcee-bench-backlog", 3)
	if err != nil {
		db.drop()
		return err
	}
	defer b.deleteTopic(ctx, cl, topic) // after kafkaPlain, which reads it
	maxBytes, err := topicMaxBytes(ctx, cl, topic)
	if err != nil {
		db.drop()
		return err
	}
	extra := []string{"--kafkaMaxBytes", strconv.Itoa(maxBytes)}
	run, err := b.emitterRun(db.url, kafkaSetting, "beginning")
	if err != nil {
		db.drop()
		return err
	}
	run.target, run.once, run.extra = "kafka://"+b.cfg.kafka+"/"+topic, true, extra
	if err := b.kafkaWarmUp(ctx, cl, maxBytes); err != nil {
		db.drop()
		return err
	}
	res := kafkaResult{what: "backlog", n: b.cfg.backlog}
	pg0, pgPids, errPG := b.host.cpuOf(isPostgres)
	br0, _, errBroker := b.host.cpuOf(isKafkaBroker)
	start := time.Now()
	p, err := run.start()
	if err != nil {
		db.drop()
		return err
	}
	err = p.wait(ctx)
	res.elapsed = time.Since(start)
	// The emitter's backends exit after it: their time is counted once
	// they are gone (in the postmaster's), not while they go.
	pg1, err1 := b.host.settledCPUOf(isPostgres, pgPids, 5*time.Second)
	br1, _, err2 := b.host.cpuOf(isKafkaBroker)
	res.pgCPU, res.brokerCPU = pg1-pg0, br1-br0
	if err := cmp.Or(errPG, errBroker, err1, err2); err != nil {
		res.pgCPU, res.brokerCPU = -1, -1 // unknown: not 0
		b.done("kafka backlog: the CPU of PostgreSQL and the broker: %v", err)
	}
	db.drop()
	if err != nil {
		return fmt.Errorf("backlog: %w; log %s:\n%s", err, p.log, tailFile(p.log, 20))
	}
	u := p.usage()
	res.proc = procFigures{peakRSS: u.maxRSS, cpu: u.cpu, wall: res.elapsed}
	// Counted, not kept: the harness's own memory would show in the peak
	// RSS of the next emitter it starts (the kernel's accounting of a
	// child started with vfork).
	delivered, _, err := consumeTopic(ctx, strings.Split(b.cfg.kafka, ","), topic, b.cfg.backlog, false)
	if err != nil {
		return err
	}
	res.delivered, res.load = delivered, b.host.loadAverage()
	b.rep.kafka = append(b.rep.kafka, res)
	b.done("kafka backlog %d (--kafkaMaxBytes %d, the topic's max.message.bytes): %s, %.0f events/s, load %.1f", res.n, maxBytes, res.elapsed.Round(time.Millisecond), res.perSecond(), res.load)
	if b.cfg.rate > 0 {
		if err := b.kafkaLive(ctx, cl, extra); err != nil {
			return err
		}
	}
	// Last, as the harness then holds every record: the limit of this
	// broker on this machine, the wrk of the HTTP cases.
	return b.kafkaPlain(ctx, cl, topic, maxBytes)
}

// kafkaPlain produces the records the emitter produced in the backlog run
// (keys, values, headers) again, with a plain franz-go producer of the
// emitter's settings (idempotent, acks=all, linger 5 ms), into a new topic
// of as many partitions: what the broker takes when nothing else is done.
func (b *bench) kafkaPlain(ctx context.Context, cl *kgo.Client, from string, maxBytes int) error {
	_, recs, err := consumeTopic(ctx, strings.Split(b.cfg.kafka, ","), from, b.cfg.backlog, true)
	if err != nil {
		return err
	}
	topic, err := createTopic(ctx, cl, "kcee-bench-plain", 3)
	if err != nil {
		return err
	}
	defer b.deleteTopic(ctx, cl, topic)
	res := kafkaResult{what: "plain", n: len(recs)}
	if res.elapsed, err = b.producePlain(ctx, maxBytes, len(recs), func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: recs[i].Key, Value: recs[i].Value, Headers: recs[i].Headers}
	}); err != nil {
		return fmt.Errorf("plain producer: %w", err)
	}
	res.delivered, res.load = len(recs), b.host.loadAverage()
	b.rep.kafka = append(b.rep.kafka, res)
	b.done("kafka plain producer %d: %s, %.0f records/s, load %.1f", res.n, res.elapsed.Round(time.Millisecond), res.perSecond(), res.load)
	return nil
}

// warmUpRecords is how many records kafkaWarmUp produces.
const warmUpRecords = 1_000_000

// kafkaWarmUp produces warmUpRecords records of an event's size and shape
// into a topic of their own, unmeasured, with the plain producer's
// settings: a broker just started compiles its hot paths (its JIT) during
// the first few hundred thousand records, which made the first drain
// after scripts/kafka.sh start cost the broker three times its CPU.
func (b *bench) kafkaWarmUp(ctx context.Context, cl *kgo.Client, maxBytes int) error {
	topic, err := createTopic(ctx, cl, "kcee-bench-warmup", 3)
	if err != nil {
		return err
	}
	defer b.deleteTopic(ctx, cl, topic)
	elapsed, err := b.producePlain(ctx, maxBytes, warmUpRecords, func(i int) *kgo.Record {
		value := fmt.Appendf(nil, `{"id":"%08x-0000-4000-8000-%012x","time":%d,"type":"LOGIN","details":{"code_id":"%x","username":"user%d"}}`,
			i, i*7919, 1763900000000+i, i*104729, i%500)
		return &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "user%d", i%500), Value: value,
			Headers: []kgo.RecordHeader{{Key: "uid", Value: fmt.Appendf(nil, "%d", i)}}}
	})
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	b.done("kafka warm-up %d records: %s", warmUpRecords, elapsed.Round(time.Millisecond))
	return nil
}

// producePlain produces the n records rec returns with a plain franz-go
// producer of the emitter's settings (idempotent, acks=all, linger 5 ms)
// and returns how long they took, until the broker acknowledged the last.
func (b *bench) producePlain(ctx context.Context, maxBytes, n int, rec func(i int) *kgo.Record) (time.Duration, error) {
	pr, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(b.cfg.kafka, ",")...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(int32(maxBytes)), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	var failed atomic.Int64
	start := time.Now()
	for i := range n {
		pr.Produce(ctx, rec(i), func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := pr.Flush(ctx); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d records failed", f, n)
	}
	return elapsed, nil
}

// kafkaLive tails events inserted at cfg.rate and measures commit -> broker.
func (b *bench) kafkaLive(ctx context.Context, cl *kgo.Client, extra []string) error {
	n := b.cfg.rate * b.cfg.rateSeconds
	w := newWorld(b.cfg.realms, b.cfg.users)
	db, err := createDB(ctx, b.root, b.cluster, w)
	if err != nil {
		return err
	}
	defer db.drop()
	topic, err := createTopic(ctx, cl, "kcee-bench-live", 3)
	if err != nil {
		return err
	}
	defer b.deleteTopic(ctx, cl, topic)
	run, err := b.emitterRun(db.url, kafkaSetting, "beginning")
	if err != nil {
		return err
	}
	run.target, run.extra = "kafka://"+b.cfg.kafka+"/"+topic, extra
	p, err := run.start()
	if err != nil {
		return err
	}
	defer p.stop(30 * time.Second)
	if err := waitReady(ctx, p); err != nil {
		return err
	}
	commits := make([]int64, n)
	res := kafkaResult{what: "live", n: n, rate: b.cfg.rate}
	start := time.Now()
	if err := insertPaced(ctx, db, newGenerator(w, uint64(n)*31), commits, b.cfg.rate); err != nil {
		return err
	}
	_, recs, err := consumeTopic(ctx, strings.Split(b.cfg.kafka, ","), topic, n, true)
	if err != nil {
		return err
	}
	res.elapsed = time.Since(start)
	var lat []time.Duration
	seen := map[int]bool{}
	for _, r := range recs {
		seq, ok := seqOf(headerOf(r, "id"))
		if !ok || seq >= n || seen[seq] {
			continue
		}
		seen[seq] = true
		lat = append(lat, r.Timestamp.Sub(time.Unix(0, commits[seq])))
	}
	// The process's own high-water mark (VmHWM), read before it exits: the
	// kernel's ru_maxrss of a child may hold the harness's memory.
	m, _ := b.host.memory(p.pid())
	if err := p.stop(30 * time.Second); err != nil {
		return err
	}
	u := p.usage()
	res.proc = procFigures{peakRSS: m.peak, cpu: u.cpu, wall: res.elapsed}
	res.delivered, res.load = len(seen), b.host.loadAverage()
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50, res.p99, res.pMax = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	b.rep.kafka = append(b.rep.kafka, res)
	b.done("kafka live %d/s: p50 %s, p99 %s, max %s, load %.1f", res.rate, ms(res.p50), ms(res.p99), ms(res.pMax), res.load)
	return nil
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// topicMaxBytes returns the topic's max.message.bytes: the broker's
// message.max.bytes unless the topic sets its own, the limit a batch meets.
// (The broker resource "" holds only the cluster's dynamic defaults, not
// the message.max.bytes of server.properties.)
func topicMaxBytes(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	rr.ConfigNames = []string{"max.message.bytes"}
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("kafka describe configs: %w", err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return 0, fmt.Errorf("kafka describe configs of topic %s: %w", topic, err)
		}
		for _, c := range r.Configs {
			if c.Name == "max.message.bytes" && c.Value != nil {
				return strconv.Atoi(*c.Value)
			}
		}
	}
	return 0, fmt.Errorf("kafka describe configs of topic %s: no max.message.bytes", topic)
}

// createTopic creates a topic of a new name with the prefix whose records
// carry the broker's append time.
func createTopic(ctx context.Context, cl *kgo.Client, prefix string, partitions int32) (string, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name, c.Value = "message.timestamp.type", kmsg.StringPtr("LogAppendTime")
	rt.Configs = append(rt.Configs, c)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 20000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return "", fmt.Errorf("create topic %s: %w", name, err)
	}
	return name, nil
}

// deleteTopic deletes topic once measured, so that the broker's disk does
// not keep every run's records; a failure is only reported.
func (b *bench) deleteTopic(ctx context.Context, cl *kgo.Client, topic string) {
	req := kmsg.NewPtrDeleteTopicsRequest()
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics, req.TopicNames, req.TimeoutMillis = append(req.Topics, rt), []string{topic}, 20000
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Topics) > 0 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		b.done("delete topic %s: %v", topic, err)
	}
}

// consumeTopic reads topic from the start until it holds n distinct ids, or
// nothing new came for 30 s, and returns how many it read, and the records
// when keep is set.
func consumeTopic(ctx context.Context, brokers []string, topic string, n int, keep bool) (int, []*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	ids := map[string]bool{}
	for last := time.Now(); len(ids) < n; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			if keep {
				recs = append(recs, r)
			}
			ids[headerOf(r, "id")] = true
			got++
		})
		if got > 0 {
			last = time.Now()
		} else if time.Since(last) > 30*time.Second {
			return len(ids), recs, fmt.Errorf("topic %s: %d of %d events arrived", topic, len(ids), n)
		}
	}
	return len(ids), recs, nil
}

// kafkaTable writes the kafka case's results.
func (r *report) kafkaTable(b *strings.Builder) {
	if len(r.kafka) == 0 {
		return
	}
	fmt.Fprintf(b, "#### Kafka (target kafka://, JSON, block; the broker of scripts/kafka.sh on the same machine)\n\n")
	fmt.Fprintf(b, "| run | events | inserted/s | delivered/s | commit -> broker p50 | p99 | max | peak RSS | CPU s/100k | PostgreSQL, broker CPU s/100k | load |\n")
	fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range r.kafka {
		run, inserted, p50, p99, pMax, others := "backlog (--once)", "before", "", "", "", ""
		if k.what == "plain" {
			fmt.Fprintf(b, "| plain franz-go producer, the same records (the limit) | %s | | %s | | | | | | | %.1f |\n", num(float64(k.n)), num(k.perSecond()), k.load)
			continue
		}
		if k.rate > 0 {
			run, inserted = "live", num(float64(k.rate))
			p50, p99, pMax = ms(k.p50), ms(k.p99), ms(k.pMax)
		} else if k.delivered > 0 && k.pgCPU >= 0 {
			per100k := func(d time.Duration) float64 { return d.Seconds() * 100000 / float64(k.delivered) }
			others = fmt.Sprintf("%.2f, %.2f", per100k(k.pgCPU), per100k(k.brokerCPU))
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %.1f |\n", run, num(float64(k.n)), inserted,
			num(k.perSecond()), p50, p99, pMax, mib(k.proc.peakRSS), k.proc.cpuPer100k(int64(k.delivered)), others, k.load)
	}
	fmt.Fprintf(b, "The CPU of a backlog's drain: the emitter's own (CPU s/100k), and what PostgreSQL (every postgres process,\n")
	fmt.Fprintf(b, "with the backends that exited) and the broker used meanwhile, per 100,000 events: the three share the machine's cores.\n\n")
}
