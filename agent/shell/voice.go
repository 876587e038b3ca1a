package shell

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// espeakVoices maps the shell's languages to espeak-ng voices.
var espeakVoices = map[string]string{"zh-CN": "cmn", "en": "en"}

// voice renders the shell's spoken prompts (assets/voice.json) to WAV files with espeak-ng, at
// the agent's start and offline, into a folder that keeps them across restarts (a prompt is
// rendered again only when its text changed). Without espeak-ng the shell works silently and
// the log says why.
type voice struct {
	dir, prog string
	log       *slog.Logger

	mu     sync.Mutex
	files  map[string]string // lang/prompt -> file
	reason string            // why there is no voice ("" while rendering or when there is)
	done   bool
}

func newVoice(dir, prog string, log *slog.Logger) *voice {
	if prog == "" {
		prog = "espeak-ng"
	}
	return &voice{dir: dir, prog: prog, log: log, files: map[string]string{}}
}

// prompts returns the prompts by language and name.
func prompts() (map[string]map[string]string, error) {
	b, err := fs.ReadFile(fsys(), "voice.json")
	if err != nil {
		return nil, err
	}
	var p map[string]map[string]string
	return p, json.Unmarshal(b, &p)
}

func (v *voice) render(ctx context.Context) {
	defer func() {
		v.mu.Lock()
		v.done = true
		v.mu.Unlock()
	}()
	fail := func(reason string) {
		v.mu.Lock()
		v.reason = reason
		v.mu.Unlock()
		v.log.Warn("shell: no voice prompts; the shell works without them", "reason", reason)
	}
	if v.dir == "" {
		fail("no voice folder configured")
		return
	}
	prog, err := exec.LookPath(v.prog)
	if err != nil {
		fail(v.prog + " is not installed (Debian package espeak-ng)")
		return
	}
	all, err := prompts()
	if err != nil {
		fail("voice.json: " + err.Error())
		return
	}
	n := 0
	for lang, ps := range all {
		if err := os.MkdirAll(filepath.Join(v.dir, lang), 0o755); err != nil {
			fail(err.Error())
			return
		}
		for name, text := range ps {
			sum := sha256.Sum256([]byte(espeakVoices[lang] + "\n" + text))
			file := filepath.Join(v.dir, lang, name+"-"+hex.EncodeToString(sum[:4])+".wav")
			if _, err := os.Stat(file); err != nil {
				tmp := file + ".tmp"
				out, err := exec.CommandContext(ctx, prog, "-v", espeakVoices[lang], "-s", "140", "-w", tmp, text).CombinedOutput()
				if err == nil {
					err = os.Rename(tmp, file)
				}
				if err != nil {
					os.Remove(tmp)
					if ctx.Err() != nil {
						return
					}
					fail(fmt.Sprintf("%s failed on prompt %s/%s: %v %s", v.prog, lang, name, err, strings.TrimSpace(string(out))))
					return
				}
				n++
			}
			v.mu.Lock()
			v.files[lang+"/"+name] = file
			v.mu.Unlock()
		}
	}
	v.log.Info("shell: voice prompts ready", "rendered", n, "prompts", len(v.files))
}

// status reports whether the prompts are there, and why not.
func (v *voice) status() (bool, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.reason != "":
		return false, v.reason
	case !v.done:
		return false, "rendering"
	}
	return len(v.files) > 0, ""
}

// serve serves a prompt's WAV: GET /shell/voice/{lang}/{prompt}.wav.
func (v *voice) serve(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("lang") + "/" + strings.TrimSuffix(r.PathValue("prompt"), ".wav")
	v.mu.Lock()
	file := v.files[key]
	v.mu.Unlock()
	if file == "" {
		http.Error(w, "no voice prompt "+key, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	http.ServeFile(w, r, file)
}
