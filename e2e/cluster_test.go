package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/agent/link"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store/postgres"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/pgtest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// pgCluster is hub replicas on one PostgreSQL database (a server of the test's own), all given
// one data folder: the cluster's secrets, made once by fleet-hub init.
type pgCluster struct {
	t      *testing.T
	pg     *pgtest.Server
	url    string
	data   string
	public string // every replica's --public-url: the OpenID issuer
	lease  time.Duration
	reps   []*hub
}

// newCluster starts PostgreSQL and n replicas r0..rn-1 with the given presence lease and more
// flags; every replica advertises mqtt (nil: every replica's MQTT address) to enrolling kiosks.
func newCluster(t *testing.T, n int, lease time.Duration, mqtt []string, flags ...string) *pgCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := pgtest.Start(ctx)
	if errors.Is(err, pgtest.ErrNoPostgres) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- postgres log (tail) ---\n%s", pg.Log())
		}
		pg.Close()
	})
	_, url, err := pg.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, pg: pg, url: url, data: t.TempDir(), lease: lease}
	for i := range n {
		c.reps = append(c.reps, &hub{t: t, name: fmt.Sprintf("r%d", i), dir: c.data, httpAddr: freeAddr(t), mqttAddr: freeAddr(t),
			caFile: filepath.Join(c.data, "ca", "ca.crt")})
	}
	c.public = "https://" + c.reps[0].httpAddr
	if len(mqtt) == 0 {
		for _, r := range c.reps {
			mqtt = append(mqtt, r.mqttAddr)
		}
	}
	out, err := exec.Command(filepath.Join(binDir, "fleet-hub"), "init", "--data", c.data, "--store", url, "--public-url", c.public,
		"--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("fleet-hub init: %v\n%s", err, out)
	}
	token, err := os.ReadFile(filepath.Join(c.data, "bootstrap-token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.reps {
		r.args = []string{"--store", url, "--public-url", c.public, "--advertise-mqtt", strings.Join(mqtt, ","),
			"--replica", r.name, "--presence-lease", lease.String(), "--log-level", "info"}
		r.args = append(r.args, flags...)
		r.client = &api.Client{BaseURL: "https://" + r.httpAddr, Token: strings.TrimSpace(string(token))} // trusts the CA once healthy
		r.start()
	}
	return c
}

// byMQTT returns the replica listening on addr.
func (c *pgCluster) byMQTT(addr string) *hub {
	for _, r := range c.reps {
		if r.mqttAddr == addr {
			return r
		}
	}
	return nil
}

// records returns, per device, the epoch and seq of every record PostgreSQL holds, in the order
// they were stored (the hub-wide id): what the test compares with what each kiosk appended.
func (c *pgCluster) records(ctx context.Context) map[string][]fleet.Record {
	c.t.Helper()
	conn, err := pgx.Connect(ctx, c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `SELECT e.device_id, e.epoch, r.seq FROM records r JOIN epochs e ON e.id = r.epoch_id ORDER BY r.id`)
	out := map[string][]fleet.Record{}
	var dev, epoch string
	var seq uint64
	if _, err := pgx.ForEachRow(rows, []any{&dev, &epoch, &seq}, func() error {
		out[dev] = append(out[dev], fleet.Record{DeviceID: dev, Epoch: epoch, Seq: seq})
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// arrivals records when each command first reached a kiosk.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *arrivals) onCommand(_ string, c wire.Command) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[c.ID]; !ok {
		a.at[c.ID] = time.Now()
	}
}

func (a *arrivals) get(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[id]
	return t, ok
}

// downlinkBound is how soon a command or revocation written on one replica must reach a kiosk
// at another: by notice, as the sweep runs only every 30 s. The issue asks 1 s; make test runs
// with -race on a loaded machine beside other packages, so it allows 3 s (the soak, 1 s).
func downlinkBound() time.Duration {
	if os.Getenv("KF_SOAK") == "1" {
		return time.Second
	}
	return 3 * time.Second
}

// Hub replicas on PostgreSQL under load from simulated kiosks spread over them, one replica
// killed (-9) and restarted again and again, then PostgreSQL itself: every record each kiosk
// appended is stored once, in order; commands written on one replica reach kiosks held by the
// others, a revocation cuts a kiosk wherever it is connected, both within downlinkBound; a kiosk
// of a killed replica that does not come back shows offline within the replica's lease, and
// every other kiosk online at the replica it reconnected to. Staff log in with a device grant
// started, approved and polled on three replicas; after each kill their tokens, issued by the
// killed replica, are taken and refreshed at another; a rotated refresh token replayed is
// caught on any replica, and its family revoked.
func TestSoakCluster(t *testing.T) {
	counts := soakCounts()
	const lease = 3 * time.Second
	began := time.Now()
	c := newCluster(t, 3, lease, nil)
	a := c.reps[0]
	arr := &arrivals{at: map[string]time.Time{}}
	var cmdLatencies, presenceSettle []time.Duration
	var fl *fleetsim.Fleet
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := fleetsim.Config{HubURL: a.client.BaseURL, HubCA: a.roots(), Token: a.client.Token, StateDir: t.TempDir(),
		Agents: counts.ClusterAgents, Rate: counts.ClusterRate, Size: 100, Heartbeat: time.Second, AckTimeout: 3 * time.Second,
		OnCommand: arr.onCommand,
		During: func(ctx context.Context, f *fleetsim.Fleet) {
			fl = f
			t.Logf("%v: kiosks per replica at start: %v", time.Since(began).Round(time.Second), spread(c, f))
			// Staff log in once, the device grant started on r1, approved on r2, the tokens
			// taken on r0: the first victim. Each cycle's victim is the previous one's sender,
			// where the staff's tokens were refreshed last.
			staff := staffLogin(t, c, c.reps[1], c.reps[2], c.reps[0])
			firstRefresh := staff.RefreshToken
			for cycle := range counts.ClusterKills {
				sleepCtx(ctx, counts.ClusterEvery)
				victim, sender := c.reps[cycle%3], c.reps[(cycle+1)%3]
				cmdLatencies = append(cmdLatencies, commandsAcross(t, c, f, arr, sender)...)
				// A kiosk of the victim that will not come back: only the victim's lease can
				// take it offline.
				gone := -1
				for i := range f.Len() {
					if f.Link(i).Connected() && f.Link(i).Broker() == victim.mqttAddr {
						gone = i
						f.Unplug(i)
						break
					}
				}
				victim.p.kill9()
				killed := time.Now()
				// The kiosk that stays away is offline within the lease (and the third of it
				// between renewals; twice the lease allows for -race on a loaded machine); the
				// others show online wherever they reconnected, once they have (how soon
				// depends on their backoff and the machine's load).
				var goneOffline time.Duration
				waitFor(t, time.Minute, fmt.Sprintf("cycle %d: presence right after %s was killed", cycle, victim.name), func() bool {
					right, off := presenceRight(c, sender, f, gone)
					if off && goneOffline == 0 {
						goneOffline = time.Since(killed)
					}
					return right
				})
				if gone >= 0 && goneOffline > 2*lease {
					t.Errorf("cycle %d: a kiosk of %s (killed) showed offline after %v, want within its lease (%v)",
						cycle, victim.name, goneOffline.Round(time.Millisecond), lease)
				}
				presenceSettle = append(presenceSettle, time.Since(killed))
				staff = staffMoved(t, c, staff, victim, sender)
				victim.start()
				if gone >= 0 {
					f.Plug(gone)
				}
				t.Logf("%v: cycle %d: %s killed and restarted; its kiosk that stayed away offline after %v, presence right after %v; kiosks per replica %v",
					time.Since(began).Round(time.Second), cycle, victim.name, goneOffline.Round(time.Millisecond),
					presenceSettle[len(presenceSettle)-1].Round(time.Millisecond), spread(c, f))
			}
			revokeAcross(t, c)
			reuseAcross(t, c, firstRefresh, staff.RefreshToken)
			// PostgreSQL itself killed under load: nothing acked is lost, the kiosks resend
			// the rest, presence comes right again.
			if err := c.pg.Kill(); err != nil {
				t.Fatal(err)
			}
			down := lease + time.Second // long enough for every replica's lease to lapse
			sleepCtx(ctx, down)

			rctx, rcancel := context.WithTimeout(ctx, time.Minute)
			defer rcancel()
			if err := c.pg.Restart(rctx); err != nil {
				t.Fatal(err)
			}
			restarted := time.Now()
			waitFor(t, time.Minute, "presence right after PostgreSQL's restart", func() bool {
				right, _ := presenceRight(c, a, f, -1)
				return right
			})
			t.Logf("%v: PostgreSQL killed for %v under load; presence right %v after its restart",
				time.Since(began).Round(time.Second), down, time.Since(restarted).Round(time.Millisecond))
			sleepCtx(ctx, 2*time.Second) // load on the restarted database
		},
	}
	res, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fl == nil {
		t.Fatalf("the fleet never connected: %+v", res)
	}
	if res.Unacked != 0 || res.Acked != res.Appended {
		t.Errorf("kiosks appended %d records, the hub acked %d, %d never acked", res.Appended, res.Acked, res.Unacked)
	}
	recs := c.records(ctx)
	var total tally
	for i := range fl.Len() {
		id := fl.DeviceID(i)
		tl := verify(outboxState{Epoch: fl.Epoch(i), Next: fl.Appended(i) + 1}, recs[id])
		if !tl.ok() || tl.Stored != tl.Sent {
			t.Errorf("%s: %s (first lost seqs %v)", id, tl, tl.LostSeqs)
		}
		total = total.add(tl)
	}
	st, err := postgres.Open(ctx, c.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(ctx); err != nil {
		t.Error(err)
	}
	summary(t, "cluster", total, fmt.Sprintf(" agents=%d replicas=3 replica-kills=%d postgres-kills=1 sessions=%d commands=%d command-latency-max=%v presence-settle-max=%v",
		fl.Len(), counts.ClusterKills, res.Sessions, len(cmdLatencies), maxDuration(cmdLatencies).Round(time.Millisecond),
		maxDuration(presenceSettle).Round(time.Millisecond)))
}

// spread counts the connected kiosks per replica.
func spread(c *pgCluster, f *fleetsim.Fleet) map[string]int {
	m := map[string]int{}
	for i := range f.Len() {
		if r := c.byMQTT(f.Link(i).Broker()); r != nil && f.Link(i).Connected() {
			m[r.name]++
		}
	}
	return m
}

// presenceRight reports whether the hub (asked through replica via) shows every kiosk as it is:
// online at the replica it is connected to, and kiosk gone offline; and whether it shows gone
// offline.
func presenceRight(c *pgCluster, via *hub, f *fleetsim.Fleet, gone int) (right, goneOffline bool) {
	ds, err := via.client.ListDevices(context.Background(), api.DeviceQuery{})
	if err != nil {
		return false, false // PostgreSQL restarting
	}
	byID := map[string]fleet.Device{}
	for _, d := range ds {
		byID[d.ID] = d
	}
	right = true
	for i := range f.Len() {
		d := byID[f.DeviceID(i)]
		if i == gone {
			goneOffline = !d.Online
			right = right && goneOffline
			continue
		}
		r := c.byMQTT(f.Link(i).Broker())
		if !f.Link(i).Connected() || r == nil || !d.Online || d.Replica != r.name {
			right = false
		}
	}
	return right, goneOffline
}

// commandsAcross creates, through replica sender, a command for every kiosk connected to
// another replica, and waits until each arrived; it returns their latencies, creation (the
// API's answer) to arrival at the kiosk.
func commandsAcross(t *testing.T, c *pgCluster, f *fleetsim.Fleet, arr *arrivals, sender *hub) []time.Duration {
	t.Helper()
	created := map[string]time.Time{}
	for i := range f.Len() {
		if !f.Link(i).Connected() || f.Link(i).Broker() == sender.mqttAddr {
			continue
		}
		cmd, err := sender.client.SendCommand(context.Background(), f.DeviceID(i), api.CreateCommand{Name: "ping", TTL: "1m"})
		if err != nil {
			t.Fatal(err)
		}
		created[cmd.ID] = time.Now()
	}
	var lat []time.Duration
	bound := downlinkBound()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d commands from %s at the kiosks", len(created), sender.name), func() bool {
		for id := range created {
			if _, ok := arr.get(id); !ok {
				return false
			}
		}
		return true
	})
	late := false
	for id, at := range created {
		got, _ := arr.get(id)
		d := max(0, got.Sub(at))
		if d > bound {
			late = true
			t.Errorf("command %s written on %s reached its kiosk after %v, want within %v", id, sender.name, d.Round(time.Millisecond), bound)
		}
		lat = append(lat, d)
	}
	if late {
		// The part of it inside the replicas holding the kiosks (since each one's start).
		for _, r := range c.reps {
			if r != sender {
				t.Logf("%s: notice -> published %s", r.name, downlinkBounds(r, "published"))
			}
		}
	}
	if len(created) == 0 {
		t.Errorf("no kiosk connected to a replica other than %s", sender.name)
	}
	return lat
}

// revokeAcross revokes, through r0, a kiosk connected to r2 only, and checks that its session
// is cut within downlinkBound and stays so.
func revokeAcross(t *testing.T, c *pgCluster) {
	t.Helper()
	ctx := context.Background()
	r0, r2 := c.reps[0], c.reps[2]
	tok, err := r0.client.CreateToken(ctx, api.CreateToken{SiteID: "fleetsim"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := enroll.Enroll(ctx, []string{r0.client.BaseURL}, tok.Secret, "test", t.TempDir(), []string{r2.mqttAddr})
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.New(link.Config{DeviceID: id.DeviceID, Brokers: id.MQTTAddrs, TLS: id.TLSConfig(),
		Outbox: outbox.NewMemory(outbox.Options{}), MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(lctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 20*time.Second, "the kiosk connected to r2", l.Connected)
	if _, err := r0.client.Revoke(ctx, id.DeviceID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	waitFor(t, 30*time.Second, "the revoked kiosk cut at r2", func() bool { return !l.Connected() })
	if d := time.Since(revoked); d > downlinkBound() {
		t.Errorf("a kiosk at r2 revoked on r0 was cut after %v, want within %v", d.Round(time.Millisecond), downlinkBound())
	} else {
		t.Logf("a kiosk at r2 revoked on r0: cut after %v", d.Round(time.Millisecond))
	}
	time.Sleep(time.Second) // it keeps trying, every 100-200 ms
	if l.Connected() {
		t.Error("the revoked kiosk connected again")
	}
}

// staffLogin logs the admin in as fleetctl does, with the device grant: started on replica
// start, approved in a browser on approve, the tokens polled on poll.
func staffLogin(t *testing.T, c *pgCluster, start, approve, poll *hub) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(staffCtx(c), time.Minute)
	defer cancel()
	// For the fleet API (RFC 8707 resource indicator), as fleetctl asks: the API takes no other.
	da, err := staffConf(start, start).DeviceAuth(ctx, oauth2.SetAuthURLParam("resource", api.FleetResource(c.public)))
	if err != nil {
		t.Fatal(err)
	}
	b := identitytest.NewBrowserFor(approve.client.BaseURL)
	b.C.Transport = approve.client.HTTP.Transport
	p, err := b.Get(approve.client.BaseURL + "/oidc/device?user_code=" + url.QueryEscape(da.UserCode))
	if err != nil {
		t.Fatal(err)
	}
	password := adminPassword(t, &hub{dir: c.data})
	for range 4 { // the login form, then the approval page
		switch {
		case strings.Contains(p.Body, `name="password"`):
			p, err = b.Submit(p, url.Values{"username": {"admin"}, "password": {password}})
		case strings.Contains(p.Body, `value="approve"`):
			p, err = b.Submit(p, url.Values{"action": {"approve"}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if p.URL.Host != approve.httpAddr {
		t.Errorf("approved on %s, want %s (%s)", p.URL.Host, approve.name, approve.httpAddr)
	}
	tok, err := staffConf(start, poll).DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device grant started on %s, approved on %s, polled on %s: %v (last page %d: %.300s)",
			start.name, approve.name, poll.name, err, p.Status, p.Body)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tok
}

// staffConf is fleetctl's OAuth client with its device grant started on start and its tokens
// taken on tokens.
func staffConf(start, tokens *hub) *oauth2.Config {
	return &oauth2.Config{ClientID: "fleetctl", Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: start.client.BaseURL + "/oidc/device_authorization",
			TokenURL: tokens.client.BaseURL + "/oidc/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// staffCtx carries, for oauth2, an HTTP client trusting the cluster's CA (every replica's HTTPS
// chains to it).
func staffCtx(c *pgCluster) context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, clusterHTTP(c))
}

// staffRefresh refreshes tok's refresh token on replica r.
func staffRefresh(c *pgCluster, r *hub, rt string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(staffCtx(c), 30*time.Second)
	defer cancel()
	return staffConf(r, r).TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

// staffMoved checks that staff whose tokens were issued by a replica that was then killed
// carry on at another, to: the access token is taken there, and the refresh token refreshes
// there. It returns the refreshed tokens.
func staffMoved(t *testing.T, c *pgCluster, tok *oauth2.Token, from, to *hub) *oauth2.Token {
	t.Helper()
	staff := &api.Client{BaseURL: to.client.BaseURL, Token: tok.AccessToken, HTTP: to.client.HTTP}
	if _, err := staff.ListDevices(context.Background(), api.DeviceQuery{}); err != nil {
		t.Errorf("an access token issued on %s (killed since), used on %s: %v", from.name, to.name, err)
	}
	tok2, err := staffRefresh(c, to, tok.RefreshToken)
	if err != nil {
		t.Errorf("a refresh token issued on %s (killed since), refreshed on %s: %v", from.name, to.name, err)
		return tok
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Errorf("the refresh token did not rotate on %s", to.name)
	}
	staff.Token = tok2.AccessToken
	if _, err := staff.ListDevices(context.Background(), api.DeviceQuery{}); err != nil {
		t.Errorf("the access token refreshed on %s: %v", to.name, err)
	}
	return tok2
}

// reuseAcross replays first, a refresh token rotated since, on r2: refused, and its whole
// family revoked, so live, the family's current refresh token, is refused too, on r0.
func reuseAcross(t *testing.T, c *pgCluster, first, live string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if _, err := staffRefresh(c, c.reps[2], first); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("a rotated refresh token replayed on r2: %v, want invalid_grant", err)
	}
	if _, err := staffRefresh(c, c.reps[0], live); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("after the replay, the family's live refresh token on r0: %v, want invalid_grant (family revoked)", err)
	}
}

// clusterHTTP is an HTTP client trusting the cluster's CA.
func clusterHTTP(c *pgCluster) *http.Client {
	return &http.Client{Transport: c.reps[0].client.HTTP.Transport}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func maxDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

// The documented load balancer (scripts/haproxy.cfg, HAProxy in TCP mode for MQTT and HTTPS,
// sending PROXY protocol v2 headers) in front of the replicas: a kiosk enrolled through it knows
// only its address; the replicas see the kiosk's own address, not the balancer's; when the
// replica holding the kiosk is killed, the kiosk reconnects through it to another, and every
// record arrives once.
func TestClusterBehindHAProxy(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (Debian's haproxy; .ci/install-peers test)")
	}
	lbMQTT, lbHTTP := freeAddr(t), freeAddr(t)
	// The balancer connects to the replicas from 127.0.0.2, the only address they take PROXY
	// headers from (and require them from); the kiosk and the test are at 127.0.0.1 (and
	// 127.0.0.3): the whole of 127.0.0.0/8 is the loopback. The per-address limits stay on.
	const lbSource = "127.0.0.2"
	c := newCluster(t, 3, 3*time.Second, []string{lbMQTT}, "--proxy-protocol-from", lbSource)
	env := append(os.Environ(), "KF_LB_MQTT="+lbMQTT, "KF_LB_HTTP="+lbHTTP, "KF_CA="+c.reps[0].caFile, "KF_LB_SOURCE="+lbSource)
	for i, r := range c.reps {
		_, port, _ := strings.Cut(r.httpAddr, ":")
		env = append(env, fmt.Sprintf("KF_R%d_MQTT=%s", i, r.mqttAddr), fmt.Sprintf("KF_R%d_HTTP=%s", i, r.httpAddr),
			fmt.Sprintf("KF_R%d_HTTP_PORT=%s", i, port))
	}
	logPath := filepath.Join(t.TempDir(), "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lb := exec.Command(bin, "-db", "-f", "../scripts/haproxy.cfg")
	lb.Env, lb.Stdout, lb.Stderr = env, logf, logf
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lb.Process.Kill()
		lb.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- haproxy log ---\n%s", b)
		}
	})
	lbHub := &hub{t: t, client: &api.Client{BaseURL: "https://" + lbHTTP, Token: c.reps[0].client.Token, HTTP: clusterHTTP(c)}}
	waitFor(t, 20*time.Second, "the load balancer answering", func() bool {
		_, err := lbHub.client.Health(context.Background())
		return err == nil
	})
	lbHub.site("hall-1")
	dir, id := lbHub.enroll("hall-1")
	if got, err := enroll.Load(dir); err != nil || !slices.Equal(got.MQTTAddrs, []string{lbMQTT}) {
		t.Fatalf("enrolled through the load balancer: MQTT %v, %v; want [%s]", got.MQTTAddrs, err, lbMQTT)
	}
	a := startAgent(t, "agent", dir, "--synthetic-rate", "100")
	holder := func() string {
		d, err := lbHub.client.Device(context.Background(), id)
		if err != nil || !d.Device.Online {
			return ""
		}
		return d.Device.Replica
	}
	waitFor(t, 30*time.Second, "the kiosk online through the load balancer", func() bool { return holder() != "" })
	first := holder()
	for _, r := range c.reps {
		if r.name == first {
			if remote := sessionRemote(t, r, id); !strings.HasPrefix(remote, "127.0.0.1:") {
				t.Errorf("%s saw the kiosk's session from %q, want the kiosk's own address 127.0.0.1, not the balancer's %s", r.name, remote, lbSource)
			}
		}
	}
	clientAddrSeen(t, c, lbMQTT, lbHTTP)
	headerRefused(t, c.reps[0])
	// The balancer's own connections (its health checks, LOCAL) all carried a header.
	for _, r := range c.reps {
		for _, l := range []string{"mqtt", "http"} {
			for _, reason := range []string{"missing", "malformed", "timeout"} {
				if n := r.metric(fmt.Sprintf(`kf_proxy_protocol_refused_total{listener=%q,reason=%q}`, l, reason)); n != 0 {
					t.Errorf("%s refused %v connections on %s for their PROXY header: %s", r.name, n, l, reason)
				}
			}
		}
	}
	for _, r := range c.reps {
		if r.name == first {
			r.p.kill9()
		}
	}
	waitFor(t, 30*time.Second, "the kiosk online at another replica", func() bool { h := holder(); return h != "" && h != first })
	t.Logf("kiosk moved from %s to %s through the load balancer", first, holder())
	before := len(lbHub.records(id, ""))
	waitFor(t, 30*time.Second, "records flowing again", func() bool { return len(lbHub.records(id, "")) > before+100 })
	a.stop()
	if !drain(t, "agent-final", dir, time.Minute) {
		t.Errorf("outbox not drained")
	}
	lbHub.check("behind haproxy", dir, id, false)
}

// sessionRemote returns the remote address replica r logged for device id's latest session.
func sessionRemote(t *testing.T, r *hub, id string) string {
	t.Helper()
	b, err := os.ReadFile(r.p.log)
	if err != nil {
		t.Fatal(err)
	}
	remote := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `msg="mqtt session started"`) && strings.Contains(line, "device="+id) {
			_, after, _ := strings.Cut(line, " remote=")
			remote, _, _ = strings.Cut(after, " ")
		}
	}
	return remote
}

// clientAddrSeen connects through the balancer's MQTT and HTTPS frontends from 127.0.0.3 and
// speaks no TLS: the replica the balancer picks refuses the connection and logs it with the
// connection's very address and port, which only the PROXY header told it.
func clientAddrSeen(t *testing.T, c *pgCluster, lbMQTT, lbHTTP string) {
	t.Helper()
	for _, fe := range []struct {
		name, addr string
		logged     func(line, addr string) bool
	}{
		{"mqtt", lbMQTT, func(line, addr string) bool {
			return strings.Contains(line, `msg="mqtt refused"`) && slices.Contains(strings.Fields(line), "remote="+addr)
		}},
		{"https", lbHTTP, func(line, addr string) bool { return strings.Contains(line, "TLS handshake error from "+addr+":") }},
	} {
		conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}).Dial("tcp", fe.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte("not TLS at all\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		addr := conn.LocalAddr().String()
		waitFor(t, 20*time.Second, fmt.Sprintf("a replica logging a refusal of %s (the client's address, through the %s frontend)", addr, fe.name), func() bool {
			for _, r := range c.reps {
				if logLine(r, func(line string) bool { return fe.logged(line, addr) }) {
					return true
				}
			}
			return false
		})
		conn.Close()
	}
}

// logLine reports whether a line of replica r's log matches.
func logLine(r *hub, match func(line string) bool) bool {
	b, err := os.ReadFile(r.p.log)
	return err == nil && slices.ContainsFunc(strings.Split(string(b), "\n"), match)
}

// headerRefused sends a replica a PROXY v2 header straight from 127.0.0.1, not a balancer: it is
// refused, logged with its reason, and counted.
func headerRefused(t *testing.T, r *hub) {
	t.Helper()
	conn, err := net.Dial("tcp", r.mqttAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// §2.2: signature, PROXY, TCP over IPv4, 12 bytes: 203.0.113.7:1234 -> 10.0.0.5:8883.
	h := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\x0a\x00\x00\x05\x04\xd2\x22\xb3")
	if _, err := conn.Write(h); err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	waitFor(t, 20*time.Second, r.name+" refusing a PROXY header from a peer that is not a balancer", func() bool {
		return logLine(r, func(line string) bool {
			f := strings.Fields(line)
			return strings.Contains(line, `msg="connection refused: PROXY protocol"`) && slices.Contains(f, "listener=mqtt") &&
				slices.Contains(f, "remote="+addr) && slices.Contains(f, "reason=untrusted")
		})
	})
	if n := r.metric(`kf_proxy_protocol_refused_total{listener="mqtt",reason="untrusted"}`); n < 1 {
		t.Errorf("kf_proxy_protocol_refused_total untrusted on mqtt: %v, want 1", n)
	}
}

// downlinkBounds summarizes replica r's kf_downlink_seconds for stage: how many, and the bucket
// bounds holding its p99 and its max.
func downlinkBounds(r *hub, stage string) string {
	resp, err := r.client.HTTP.Get(r.client.BaseURL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var les []string
	var counts []float64
	prefix := `kf_downlink_seconds_bucket{stage="` + stage + `",le="`
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			le, n, _ := strings.Cut(rest, `"} `)
			v, _ := strconv.ParseFloat(n, 64)
			les, counts = append(les, le), append(counts, v)
		}
	}
	if len(counts) == 0 || counts[len(counts)-1] == 0 {
		return "none measured"
	}
	total := counts[len(counts)-1]
	at := func(q float64) string {
		for i, n := range counts {
			if n >= q*total {
				if v, err := strconv.ParseFloat(les[i], 64); err == nil {
					return fmt.Sprintf("%.0f ms", v*1000)
				}
				return les[i] // +Inf
			}
		}
		return "?"
	}
	return fmt.Sprintf("%.0f measured, p99 <= %s, max <= %s", total, at(0.99), at(1))
}
