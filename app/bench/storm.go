package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// sideLoad is what runs beside the chat during the send phase: wrong logins from LoginStorm goroutines
// (bcrypt work that must not starve the chat), and a probe of GET /api/me every probeEvery.
type sideLoad struct {
	mu       sync.Mutex
	me       *hdrhistogram.Histogram
	statuses map[int]int64 // of the wrong logins
}

const probeEvery = 50 * time.Millisecond

// start runs the side load until ctx ends; wait waits for it.
func (sl *sideLoad) start(ctx context.Context, cfg Config, token string) (wait func()) {
	sl.me, sl.statuses = hdrhistogram.New(1, 60_000_000, 3), map[int]int64{}
	var wg sync.WaitGroup
	base := cfg.URLs[0]
	for i := range cfg.LoginStorm {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				body, _ := json.Marshal(map[string]string{"email": fmt.Sprintf("storm-%d-%d@example.com", i, n), "password": "not the password"})
				status := post(ctx, base+"/api/login", body)
				sl.mu.Lock()
				sl.statuses[status]++
				sl.mu.Unlock()
			}
		})
	}
	if token != "" {
		wg.Go(func() {
			tick := time.NewTicker(probeEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/me", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				sl.mu.Lock()
				sl.me.RecordValue(max(time.Since(start).Microseconds(), 1))
				sl.mu.Unlock()
			}
		})
	}
	return wg.Wait
}

func post(ctx context.Context, url string, body []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// report fills the side load's part of rep.
func (sl *sideLoad) report(rep *Report) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if sl.me.TotalCount() > 0 {
		rep.MeMs = &Latency{P50: ms(sl.me.ValueAtQuantile(50)), P90: ms(sl.me.ValueAtQuantile(90)),
			P99: ms(sl.me.ValueAtQuantile(99)), Max: ms(sl.me.Max())}
	}
	if len(sl.statuses) > 0 {
		rep.StormStatuses = map[string]int64{}
		for code, n := range sl.statuses {
			rep.StormStatuses[fmt.Sprint(code)] = n
		}
	}
}
