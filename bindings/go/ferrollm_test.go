package ferrollm_test

// Run by tests/bindings.rs, which sets:
//
//	FERROLLM_TEST_HF_DIR            a Hugging Face checkpoint folder (a tiny GPT-2)
//	FERROLLM_TEST_UNSUPPORTED_HF_DIR a folder whose config.json names an unsupported architecture
//	FERROLLM_TEST_MODEL_F16         an F16 model file to quantize
//	FERROLLM_TEST_UNSUPPORTED_MODEL a well-formed GGUF file of an architecture ferrollm lacks
//	FERROLLM_TEST_OUT               an empty scratch folder
//
// Without them the tests skip (and the Rust harness fails on a skip).

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	ferrollm "github.com/ferrollm/ferrollm/bindings/go"
)

type env struct {
	f16, unsupported, out, hf, unsupportedHF string
}

func setup(t *testing.T) env {
	t.Helper()
	e := env{
		f16:           os.Getenv("FERROLLM_TEST_MODEL_F16"),
		unsupported:   os.Getenv("FERROLLM_TEST_UNSUPPORTED_MODEL"),
		out:           os.Getenv("FERROLLM_TEST_OUT"),
		hf:            os.Getenv("FERROLLM_TEST_HF_DIR"),
		unsupportedHF: os.Getenv("FERROLLM_TEST_UNSUPPORTED_HF_DIR"),
	}
	if e.f16 == "" || e.unsupported == "" || e.out == "" || e.hf == "" || e.unsupportedHF == "" {
		t.Skip("the FERROLLM_TEST_* variables are not set (tests/bindings.rs sets them)")
	}
	return e
}

var (
	q4Once sync.Once
	q4Path string
	q4Err  error
)

// q4 quantizes the F16 model once for the tests that need a runnable model.
func q4(t *testing.T, e env) string {
	t.Helper()
	q4Once.Do(func() {
		q4Path, q4Err = ferrollm.Quantize(e.f16, filepath.Join(e.out, "shared-q4_0.gguf"), ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, nil)
	})
	if q4Err != nil {
		t.Fatalf("quantize: %v", q4Err)
	}
	return q4Path
}

// wantError checks that err is a *ferrollm.Error with status and a message containing each of
// parts.
func wantError(t *testing.T, err error, status ferrollm.Status, parts ...string) {
	t.Helper()
	var ferr *ferrollm.Error
	if !errors.As(err, &ferr) {
		t.Fatalf("got %v (%T), want a *ferrollm.Error with status %v", err, err, status)
	}
	if ferr.Status != status || !errors.Is(err, status) {
		t.Fatalf("got status %v (%q), want %v", ferr.Status, ferr.Message, status)
	}
	for _, p := range parts {
		if !strings.Contains(ferr.Message, p) {
			t.Fatalf("message %q does not contain %q", ferr.Message, p)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestVersion(t *testing.T) {
	if ferrollm.ABIVersion() != ferrollm.HeaderABIVersion {
		t.Fatalf("ABI %d, header %d", ferrollm.ABIVersion(), ferrollm.HeaderABIVersion)
	}
	if ferrollm.Version() == "" {
		t.Fatal("empty version")
	}
	if ferrollm.TypeQ4_0.String() != "q4_0" {
		t.Fatalf("TypeQ4_0 is %q", ferrollm.TypeQ4_0.String())
	}
	if typ, err := ferrollm.TypeFromName("Q8_0"); err != nil || typ != ferrollm.TypeQ8_0 {
		t.Fatalf("TypeFromName: %v %v", typ, err)
	}
	_, err := ferrollm.TypeFromName("q9_9")
	wantError(t, err, ferrollm.ErrInvalidArgument, "q9_9")
}

func TestConvertWithProgressThenLoad(t *testing.T) {
	e := setup(t)
	c, err := ferrollm.OpenConverter(e.hf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if arch, err := c.Arch(); err != nil || arch != ferrollm.ArchGPT2 {
		t.Fatalf("arch %v, %v", arch, err)
	}
	dir := filepath.Join(e.out, "converted")
	var reports []ferrollm.Progress
	path, err := c.Convert(dir, nil, func(p ferrollm.Progress) bool {
		reports = append(reports, p)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) != dir || !strings.HasSuffix(path, "-f16.gguf") || !exists(path) {
		t.Fatalf("wrote %q", path)
	}
	if len(reports) == 0 || reports[0].Stage != "convert" {
		t.Fatalf("reports %+v", reports)
	}
	if last := reports[len(reports)-1]; last.Total == 0 || last.Current != last.Total {
		t.Fatalf("last report %+v", last)
	}
	m, err := ferrollm.LoadModel(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if info, _ := m.Info(); info.Arch != ferrollm.ArchGPT2 {
		t.Fatalf("info %+v", info)
	}

	// A manual converter; F32 weights in the legacy GGJT container.
	manual, err := ferrollm.OpenConverterAs(e.hf, ferrollm.ArchGPT2)
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	p := ferrollm.DefaultConvertParams()
	if p.Container != ferrollm.ContainerGGUF || p.DType != ferrollm.TypeF16 {
		t.Fatalf("defaults %+v", p)
	}
	p.Container, p.DType = ferrollm.ContainerGGJT, ferrollm.TypeF32
	want := filepath.Join(dir, "gpt2-f32.bin")
	if got, err := manual.Convert(want, &p, nil); err != nil || got != want || !exists(got) {
		t.Fatalf("wrote %q, %v", got, err)
	}
	want = filepath.Join(e.out, "one-call.gguf")
	if got, err := ferrollm.Convert(e.hf, want, nil, nil); err != nil || got != want {
		t.Fatalf("Convert: %q, %v", got, err)
	}
}

func TestConverterErrors(t *testing.T) {
	e := setup(t)
	dst := filepath.Join(e.out, "cancelled-f16.gguf")
	_, err := ferrollm.Convert(e.hf, dst, nil, func(p ferrollm.Progress) bool { return p.Current < 2 })
	wantError(t, err, ferrollm.ErrCancelled, "cancelled")
	if exists(dst) {
		t.Fatalf("%s was left behind", dst)
	}
	_, err = ferrollm.OpenConverter(e.unsupportedHF)
	wantError(t, err, ferrollm.ErrUnsupported, "FalconForCausalLM", "not supported")
	missing := filepath.Join(e.out, "no-such-checkpoint")
	_, err = ferrollm.OpenConverter(missing)
	wantError(t, err, ferrollm.ErrIO, missing)
	c, err := ferrollm.OpenConverter(e.hf)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = c.Arch()
	wantError(t, err, ferrollm.ErrInvalidArgument, "converter must not be NULL")
	_, err = c.Convert(filepath.Join(e.out, "never.gguf"), nil, nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "converter must not be NULL")
}

func TestQuantizeWithProgress(t *testing.T) {
	e := setup(t)
	dst := filepath.Join(e.out, "progress-q4_0.gguf")
	var reports []ferrollm.Progress
	path, err := ferrollm.Quantize(e.f16, dst, ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, func(p ferrollm.Progress) bool {
		reports = append(reports, p)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if path != dst || !exists(path) {
		t.Fatalf("wrote %q, want %q", path, dst)
	}
	if len(reports) == 0 || reports[0].Stage != "quantize" {
		t.Fatalf("reports: %+v", reports)
	}
	last := reports[len(reports)-1]
	if last.Total == 0 || last.Current != last.Total {
		t.Fatalf("last report %+v", last)
	}
}

func TestQuantizerReuseAndClose(t *testing.T) {
	e := setup(t)
	q, err := ferrollm.OpenQuantizer(e.f16)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []ferrollm.Type{ferrollm.TypeQ8_0, ferrollm.TypeQ4_0} {
		path, err := q.Quantize(e.out, typ, ferrollm.ContainerGGUF, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(path, typ.String()) || !exists(path) {
			t.Fatalf("%v: wrote %q", typ, path)
		}
	}
	q.Close()
	q.Close() // idempotent
	_, err = q.Quantize(filepath.Join(e.out, "never.gguf"), ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "quantizer must not be NULL")
}

func TestLoadDescribeTokenize(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Arch != ferrollm.ArchGPT2 || info.NVocab == 0 || info.NEmbd == 0 {
		t.Fatalf("info %+v", info)
	}
	tokens, err := m.Tokenize("Hello world", false)
	if err != nil || len(tokens) == 0 {
		t.Fatalf("tokenize: %v %v", tokens, err)
	}
	text, err := m.Detokenize(tokens)
	if err != nil || text != "Hello world" {
		t.Fatalf("detokenize: %q %v", text, err)
	}
	p := ferrollm.DefaultModelParams()
	if !p.PreferMmap {
		t.Fatal("mmap is not the default")
	}
	p.PreferMmap = false
	m2, err := ferrollm.LoadModel(q4(t, e), &p)
	if err != nil {
		t.Fatal(err)
	}
	m2.Close()
}

func TestGenerateStreams(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sp := ferrollm.DefaultSessionParams()
	sp.Threads = 1
	s, err := m.NewSession(&sp)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gp := ferrollm.DefaultGenerateParams()
	gp.MaxNewTokens = 8
	var streamed strings.Builder
	pieces := 0
	g, err := s.Generate("Hello", &gp, func(piece string) bool {
		streamed.WriteString(piece)
		pieces++
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if g.Text != streamed.String() || pieces == 0 {
		t.Fatalf("text %q, streamed %q in %d pieces", g.Text, streamed.String(), pieces)
	}
	if g.StopReason == ferrollm.StopMaxLength && len(g.Tokens) != 8 {
		t.Fatalf("%d tokens", len(g.Tokens))
	}
	if g.StopReason != ferrollm.StopMaxLength && g.StopReason != ferrollm.StopEndToken {
		t.Fatalf("stop reason %v", g.StopReason)
	}
	if g.PromptTokens == 0 || g.TotalMs <= 0 {
		t.Fatalf("prompt tokens %d, total %v ms", g.PromptTokens, g.TotalMs)
	}
}

func greedy(t *testing.T, m *ferrollm.Model, prompt string) string {
	t.Helper()
	sp := ferrollm.DefaultSessionParams()
	sp.Threads = 1
	s, err := m.NewSession(&sp)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer s.Close()
	gp := ferrollm.DefaultGenerateParams()
	gp.Temperature = 0
	gp.MaxNewTokens = 10
	g, err := s.Generate(prompt, &gp, nil)
	if err != nil {
		t.Error(err)
		return ""
	}
	return g.Text
}

// One model shared by goroutines, each with its own session, gives the single-goroutine texts.
func TestGoroutinesShareAModel(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := []string{"Hello", "The quick brown fox", "Once upon a time"}
	want := make([]string, len(prompts))
	for i, p := range prompts {
		want[i] = greedy(t, m, p)
	}
	if want[0] == "" {
		t.Fatal("empty greedy text")
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range prompts {
				k := (i + w) % len(prompts)
				if got := greedy(t, m, prompts[k]); got != want[k] {
					t.Errorf("goroutine %d, prompt %q: got %q, want %q", w, prompts[k], got, want[k])
				}
				// Error messages belong to the thread of the call that failed.
				missing := filepath.Join(e.out, "missing", prompts[k]+".gguf")
				_, err := ferrollm.LoadModel(missing, nil)
				var ferr *ferrollm.Error
				if !errors.As(err, &ferr) || !strings.Contains(ferr.Message, missing) {
					t.Errorf("goroutine %d: error %v does not name %s", w, err, missing)
				}
			}
		}(w)
	}
	wg.Wait()
}

func TestCancelledGenerationIsAStopReason(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gp := ferrollm.DefaultGenerateParams()
	gp.MaxNewTokens = 20
	calls := 0
	g, err := s.Generate("Hello", &gp, func(string) bool {
		calls++
		return calls < 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if g.StopReason != ferrollm.StopCancelled || calls != 2 || g.StopReason.String() != "cancelled" {
		t.Fatalf("stop reason %v after %d calls", g.StopReason, calls)
	}
}

func TestPanicInCallbackIsReraised(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls := 0
	func() {
		defer func() {
			if r := recover(); r != "from the callback" {
				t.Fatalf("recovered %v", r)
			}
		}()
		s.Generate("Hello", nil, func(string) bool {
			calls++
			panic("from the callback")
		})
		t.Fatal("Generate returned instead of panicking")
	}()
	if calls != 1 {
		t.Fatalf("callback called %d times", calls)
	}
	// The session still works.
	gp := ferrollm.DefaultGenerateParams()
	gp.MaxNewTokens = 2
	if _, err := s.Generate("Hello", &gp, nil); err != nil {
		t.Fatal(err)
	}
	// A panic in a progress callback: re-raised, and no file left behind.
	dst := filepath.Join(e.out, "panicked-q4_0.gguf")
	func() {
		defer func() {
			if r := recover(); r != "stop" {
				t.Fatalf("recovered %v", r)
			}
		}()
		ferrollm.Quantize(e.f16, dst, ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, func(ferrollm.Progress) bool { panic("stop") })
	}()
	if exists(dst) {
		t.Fatalf("%s was left behind", dst)
	}
}

func TestCancelledQuantizationIsAnError(t *testing.T) {
	e := setup(t)
	dst := filepath.Join(e.out, "cancelled-q4_0.gguf")
	_, err := ferrollm.Quantize(e.f16, dst, ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, func(p ferrollm.Progress) bool {
		return p.Current < 2
	})
	wantError(t, err, ferrollm.ErrCancelled, "cancelled")
	if !errors.Is(err, ferrollm.ErrCancelled) {
		t.Fatal("errors.Is(err, ErrCancelled) is false")
	}
	if exists(dst) {
		t.Fatalf("%s was left behind", dst)
	}
}

func TestMissingFile(t *testing.T) {
	e := setup(t)
	missing := filepath.Join(e.out, "no-such-model.gguf")
	_, err := ferrollm.LoadModel(missing, nil)
	wantError(t, err, ferrollm.ErrIO, missing)
	_, err = ferrollm.OpenQuantizer(missing)
	wantError(t, err, ferrollm.ErrIO, missing)
	_, err = ferrollm.Quantize(missing, "", ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, nil)
	wantError(t, err, ferrollm.ErrIO, missing)
}

func TestUnsupportedArchitecture(t *testing.T) {
	e := setup(t)
	_, err := ferrollm.LoadModel(e.unsupported, nil)
	wantError(t, err, ferrollm.ErrUnsupported, e.unsupported, "not supported")
	_, err = ferrollm.OpenQuantizer(q4(t, e))
	wantError(t, err, ferrollm.ErrUnsupported, "already quantized")
}

func TestClosedHandles(t *testing.T) {
	e := setup(t)
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	// The session keeps what it needs from the model.
	if _, err := s.Generate("Hello", nil, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	_, err = m.Info()
	wantError(t, err, ferrollm.ErrInvalidArgument, "model must not be NULL")
	_, err = m.NewSession(nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "model must not be NULL")
	s.Close()
	_, err = s.Generate("Hello", nil, nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "session must not be NULL")
	wantError(t, s.Reset(), ferrollm.ErrInvalidArgument, "session must not be NULL")
}

func TestBadArguments(t *testing.T) {
	e := setup(t)
	_, err := ferrollm.Quantize(e.f16, filepath.Join(e.out, "bad.gguf"), ferrollm.Type(99), ferrollm.ContainerGGUF, nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "99")
	_, err = ferrollm.LoadModel("a\x00b", nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "NUL")
	m, err := ferrollm.LoadModel(q4(t, e), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gp := ferrollm.DefaultGenerateParams()
	gp.StopWords = []string{"ok", "bad\x00word"}
	_, err = s.Generate("Hello", &gp, nil)
	wantError(t, err, ferrollm.ErrInvalidArgument, "stop word")
}

// Finalizers free handles that were never closed (this must not crash).
func TestFinalizers(t *testing.T) {
	e := setup(t)
	for i := 0; i < 3; i++ {
		m, err := ferrollm.LoadModel(q4(t, e), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.NewSession(nil); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}
