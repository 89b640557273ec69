// The Go side of bench/lock.ts: etcd's own Go client (go.etcd.io/etcd/clientv3, 3.4, as Debian packages
// it) taking a concurrency.Mutex the way a Go service does, timed in this process so that no Node timing
// is mixed in. Built by bench/lock.ts with buildGoProgram from @etcdkit/testing (GOPATH mode, offline).
//
//	go-mutex uncontended <endpoint> <name> <n>                               Lock + Unlock n times on one session
//	go-mutex contend     <endpoint> <name> <contenders> <warmupMs> <runMs>   contenders (own client, own session) in a loop
//
// Each prints one JSON line on stdout (see the structs below); times are milliseconds.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

type uncontended struct {
	Samples []float64 `json:"samples"`
}

type contended struct {
	// Acquisitions while recording; Total counts the warm-up's too.
	Acquisitions int       `json:"acquisitions"`
	Total        int       `json:"total"`
	ElapsedMs    float64   `json:"elapsedMs"`
	Handoffs     []float64 `json:"handoffs"`
	Failed       int       `json:"failed"`
	Overlaps     int       `json:"overlaps"`
	// Fencing tokens (create revisions of the lock keys) in the order the lock was taken.
	Tokens       []int64 `json:"tokens"`
	PerContender []int   `json:"perContender"`
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-mutex:", err)
		os.Exit(1)
	}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func newClient(endpoint string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	must(err)
	return cli
}

// token is the create revision of the Mutex's key (the fencing token), which 3.4 keeps private but puts
// in the IsOwner comparison.
func token(m *concurrency.Mutex) int64 {
	cmp := m.IsOwner()
	if t, ok := cmp.TargetUnion.(*pb.Compare_CreateRevision); ok {
		return t.CreateRevision
	}
	return -1
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: go-mutex uncontended|contend <endpoint> <name> ...")
		os.Exit(2)
	}
	cmd, endpoint, name, args := os.Args[1], os.Args[2], os.Args[3], os.Args[4:]
	ctx := context.Background()
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		must(err)
		return n
	}
	out := json.NewEncoder(os.Stdout)

	switch cmd {
	case "uncontended":
		n := atoi(args[0])
		cli := newClient(endpoint)
		defer cli.Close()
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		must(err)
		defer s.Close()
		m := concurrency.NewMutex(s, name)
		res := uncontended{Samples: make([]float64, 0, n)}
		for i := 0; i < n+n/10; i++ { // the first tenth warms up
			t0 := time.Now()
			must(m.Lock(ctx))
			must(m.Unlock(ctx))
			if i >= n/10 {
				res.Samples = append(res.Samples, ms(time.Since(t0)))
			}
		}
		must(out.Encode(res))
	case "contend":
		contenders, warmup, run := atoi(args[0]), atoi(args[1]), atoi(args[2])
		var (
			mu         sync.Mutex
			releasedAt time.Time
			holders    int
			recording  bool
			res        = contended{PerContender: make([]int, contenders)}
		)
		sessions := make([]*concurrency.Session, contenders)
		for i := range sessions {
			cli := newClient(endpoint)
			defer cli.Close()
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
			must(err)
			defer s.Close()
			sessions[i] = s
		}
		loop := func(i int, until time.Time, wg *sync.WaitGroup) {
			defer wg.Done()
			m := concurrency.NewMutex(sessions[i], name)
			for time.Now().Before(until) {
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := m.Lock(lctx)
				cancel()
				now := time.Now()
				mu.Lock()
				if err != nil {
					res.Failed++
					mu.Unlock()
					continue
				}
				res.Total++
				holders++
				if holders > 1 {
					res.Overlaps++
				}
				if recording {
					if !releasedAt.IsZero() {
						res.Handoffs = append(res.Handoffs, ms(now.Sub(releasedAt)))
					}
					res.Tokens = append(res.Tokens, token(m))
					res.PerContender[i]++
				}
				mu.Unlock()
				// the lock is held here: another holder now would be an overlap
				mu.Lock()
				holders--
				releasedAt = time.Now()
				mu.Unlock()
				must(m.Unlock(ctx))
			}
		}
		var wg sync.WaitGroup
		until := time.Now().Add(time.Duration(warmup) * time.Millisecond)
		for i := 0; i < contenders; i++ {
			wg.Add(1)
			go loop(i, until, &wg)
		}
		wg.Wait()
		mu.Lock()
		releasedAt = time.Time{}
		recording = true
		mu.Unlock()
		start := time.Now()
		until = start.Add(time.Duration(run) * time.Millisecond)
		for i := 0; i < contenders; i++ {
			wg.Add(1)
			go loop(i, until, &wg)
		}
		wg.Wait()
		res.ElapsedMs = ms(time.Since(start))
		res.Acquisitions = len(res.Tokens)
		must(out.Encode(res))
	default:
		fmt.Fprintln(os.Stderr, "go-mutex: unknown command", cmd)
		os.Exit(2)
	}
}
