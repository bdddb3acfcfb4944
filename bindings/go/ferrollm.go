// Package ferrollm wraps the ferrollm C API (include/ferrollm.h): quantize GGML-family model files
// and run them on the CPU.
//
// Linking: the cgo flags below find the header in the repository's include/ folder and the
// library in target/release or target/debug (release first), with an rpath to both. To use another
// build, put its folder first with CGO_LDFLAGS, which go places before these flags:
//
//	CGO_LDFLAGS="-L/path/to/lib -Wl,-rpath,/path/to/lib" go build
//
// (or set LD_LIBRARY_PATH at run time).
//
// Errors: every failing call returns a *Error carrying the C status and the library's message
// (ferrollm_last_error, which is per OS thread: each call and its message read run with the
// goroutine locked to its thread). errors.Is(err, ferrollm.ErrCancelled) tests a status.
//
// Ownership: Converter, Quantizer, Model and Session own one C handle each. Close frees it;
// a finalizer frees it too if Close was never called. Using a closed handle passes NULL to the
// library, which refuses it with ErrInvalidArgument and its own message ("model must not be NULL").
// Strings and results the library returns are copied into Go values and freed before the function
// returns.
//
// Threads: a Model may be used by any number of goroutines at once; a Session, a Converter and a
// Quantizer by one at a time.
package ferrollm

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -L${SRCDIR}/../../target/debug
#cgo LDFLAGS: -Wl,-rpath,${SRCDIR}/../../target/release -Wl,-rpath,${SRCDIR}/../../target/debug
#cgo LDFLAGS: -lferrollm
#include <stdint.h>
#include <stdlib.h>
#include "ferrollm.h"

// Defined in callbacks.go (//export).
extern _Bool ferrollmGoPiece(char* piece, size_t len, uintptr_t handle);
extern _Bool ferrollmGoProgress(ferrollm_progress* progress, uintptr_t handle);

static bool go_piece(const char* piece, size_t len, void* user_data) {
	return ferrollmGoPiece((char*)piece, len, (uintptr_t)user_data);
}
static bool go_progress(const ferrollm_progress* progress, void* user_data) {
	return ferrollmGoProgress((ferrollm_progress*)progress, (uintptr_t)user_data);
}

// The handle travels as an integer (a cgo.Handle) and becomes void* only on the C side.
static ferrollm_status go_session_generate(ferrollm_session* s, const char* prompt,
		const ferrollm_generate_params* p, uintptr_t h, ferrollm_generation** out) {
	return ferrollm_session_generate(s, prompt, p, h ? go_piece : NULL, (void*)h, out);
}
static ferrollm_status go_converter_convert(const ferrollm_converter* c, const char* out,
		const ferrollm_convert_params* p, uintptr_t h, char** written) {
	return ferrollm_converter_convert(c, out, p, h ? go_progress : NULL, (void*)h, written);
}
static ferrollm_status go_quantize(const char* src, const char* dst, ferrollm_type t,
		ferrollm_container c, uintptr_t h, char** written) {
	return ferrollm_quantize(src, dst, t, c, h ? go_progress : NULL, (void*)h, written);
}
static ferrollm_status go_quantizer_quantize(const ferrollm_quantizer* q, const char* dst,
		ferrollm_type t, ferrollm_container c, uintptr_t h, char** written) {
	return ferrollm_quantizer_quantize(q, dst, t, c, h ? go_progress : NULL, (void*)h, written);
}
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"strings"
	"unsafe"
)

// Status is a ferrollm_status code. It is an error value itself, so errors.Is(err, ErrCancelled)
// works on the *Error the functions return.
type Status uint32

// The status codes of include/ferrollm.h.
const (
	OK                 Status = C.FERROLLM_OK
	ErrInvalidArgument Status = C.FERROLLM_ERR_INVALID_ARGUMENT
	ErrIO              Status = C.FERROLLM_ERR_IO
	ErrFormat          Status = C.FERROLLM_ERR_FORMAT
	ErrUnsupported     Status = C.FERROLLM_ERR_UNSUPPORTED
	ErrCancelled       Status = C.FERROLLM_ERR_CANCELLED
	ErrBufferTooSmall  Status = C.FERROLLM_ERR_BUFFER_TOO_SMALL
	ErrContextFull     Status = C.FERROLLM_ERR_CONTEXT_FULL
	ErrPanic           Status = C.FERROLLM_ERR_PANIC
)

// String is the library's name for the code ("I/O error", "cancelled", …).
func (s Status) String() string {
	return C.GoString(C.ferrollm_status_name(C.ferrollm_status(s)))
}

// Error makes a Status usable as an error (and as errors.Is target).
func (s Status) Error() string { return s.String() }

// Error is a failed call: the C status and the library's message for it.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return e.Status.String() + ": " + e.Message }

// Unwrap gives the Status, for errors.Is(err, ferrollm.ErrIO).
func (e *Error) Unwrap() error { return e.Status }

// check turns a status into an error with the calling thread's message. The caller must hold
// runtime.LockOSThread since before the C call.
func check(st C.ferrollm_status) error {
	if st == C.FERROLLM_OK {
		return nil
	}
	return &Error{Status: Status(st), Message: C.GoString(C.ferrollm_last_error())}
}

// cString copies s into C memory (free with C.free); a NUL byte inside is refused.
func cString(s, what string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &Error{Status: ErrInvalidArgument, Message: what + " contains a NUL byte"}
	}
	return C.CString(s), nil
}

// optCString is cString with "" meaning NULL.
func optCString(s, what string) (*C.char, error) {
	if s == "" {
		return nil, nil
	}
	return cString(s, what)
}

// takeString copies a string the library allocated and frees it.
func takeString(p *C.char) string {
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	C.ferrollm_string_free(p)
	return s
}

// Version is the library's version ("0.1.0").
func Version() string { return C.GoString(C.ferrollm_version()) }

// ABIVersion is the loaded library's ABI version; it equals HeaderABIVersion when they match.
func ABIVersion() uint32 { return uint32(C.ferrollm_abi_version()) }

// HeaderABIVersion is FERROLLM_ABI_VERSION of the header this package was built with.
const HeaderABIVersion = uint32(C.FERROLLM_ABI_VERSION)

// Arch is a model architecture (ferrollm_arch).
type Arch uint32

const (
	ArchAuto    Arch = C.FERROLLM_ARCH_AUTO
	ArchGPT2    Arch = C.FERROLLM_ARCH_GPT2
	ArchGPTJ    Arch = C.FERROLLM_ARCH_GPTJ
	ArchGPTNeoX Arch = C.FERROLLM_ARCH_GPTNEOX
	ArchLLaMA   Arch = C.FERROLLM_ARCH_LLAMA
	ArchMPT     Arch = C.FERROLLM_ARCH_MPT
	ArchBLOOM   Arch = C.FERROLLM_ARCH_BLOOM
)

// Type is a ggml tensor type (ferrollm_type).
type Type uint32

const (
	TypeF32  Type = C.FERROLLM_TYPE_F32
	TypeF16  Type = C.FERROLLM_TYPE_F16
	TypeQ4_0 Type = C.FERROLLM_TYPE_Q4_0
	TypeQ4_1 Type = C.FERROLLM_TYPE_Q4_1
	TypeQ5_0 Type = C.FERROLLM_TYPE_Q5_0
	TypeQ5_1 Type = C.FERROLLM_TYPE_Q5_1
	TypeQ8_0 Type = C.FERROLLM_TYPE_Q8_0
	TypeQ2_K Type = C.FERROLLM_TYPE_Q2_K
	TypeQ3_K Type = C.FERROLLM_TYPE_Q3_K
	TypeQ4_K Type = C.FERROLLM_TYPE_Q4_K
	TypeQ5_K Type = C.FERROLLM_TYPE_Q5_K
	TypeQ6_K Type = C.FERROLLM_TYPE_Q6_K
	TypeBF16 Type = C.FERROLLM_TYPE_BF16
)

// String is ggml's name of the type ("q4_0"), or "" for an unknown id.
func (t Type) String() string {
	p := C.ferrollm_type_name(C.ferrollm_type(t))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// TypeFromName parses ggml's spelling of a type ("q4_0", "Q4_K"), in any case.
func TypeFromName(name string) (Type, error) {
	cs, err := cString(name, "name")
	if err != nil {
		return 0, err
	}
	defer C.free(unsafe.Pointer(cs))
	var t C.ferrollm_type
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check(C.ferrollm_type_from_name(cs, &t)); err != nil {
		return 0, err
	}
	return Type(t), nil
}

// Container is a file container (ferrollm_container).
type Container uint32

const (
	ContainerGGUF Container = C.FERROLLM_CONTAINER_GGUF
	ContainerGGJT Container = C.FERROLLM_CONTAINER_GGJT
	ContainerGGML Container = C.FERROLLM_CONTAINER_GGML
)

// Progress is one report of a long job.
type Progress struct {
	Stage   string // "convert", "quantize", …
	Tensor  string // the tensor being processed, or "" between tensors
	Current uint64
	Total   uint64
}

// ProgressFunc is called during long work, on the calling goroutine; returning false cancels the
// work, which then fails with ErrCancelled and leaves no output file. A panic inside it cancels the
// work too and is re-raised once the C call returned.
type ProgressFunc func(Progress) bool

// withCallbacks runs call with a cgo.Handle for state (0 when there is no callback), keeping the
// OS thread locked from the call to the read of its error message. A panic recovered inside the
// callback is re-raised here, after cleanup.
func withCallbacks(state *callbackState, call func(h C.uintptr_t) C.ferrollm_status) error {
	var h C.uintptr_t
	if state != nil {
		handle := cgo.NewHandle(state)
		defer handle.Delete()
		h = C.uintptr_t(handle)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(call(h))
	state.repanic()
	return err
}

func progressState(progress ProgressFunc) *callbackState {
	if progress == nil {
		return nil
	}
	return &callbackState{progress: progress}
}

// ConvertParams are the settings of a conversion; start from DefaultConvertParams (nil means
// defaults: GGUF, F16 weights).
type ConvertParams struct {
	Container Container // ContainerGGUF, ContainerGGJT or ContainerGGML
	DType     Type      // type of the weight matrices: TypeF16 or TypeF32
}

// DefaultConvertParams are the library's defaults (ferrollm_convert_default_params).
func DefaultConvertParams() ConvertParams {
	var c C.ferrollm_convert_params
	C.ferrollm_convert_default_params(&c)
	return ConvertParams{Container: Container(c.container), DType: Type(c.dtype)}
}

// Converter is an opened Hugging Face model folder (config.json, safetensors, tokenizer.json),
// ready to convert (llm-rs' AutoConverter). It owns a ferrollm_converter; use it from one
// goroutine at a time and Close it when done.
type Converter struct {
	ptr *C.ferrollm_converter
}

func openConverter(hfDir string, open func(dir *C.char, out **C.ferrollm_converter) C.ferrollm_status) (*Converter, error) {
	dir, err := cString(hfDir, "hf_dir")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(dir))
	var ptr *C.ferrollm_converter
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check(open(dir, &ptr)); err != nil {
		return nil, err
	}
	c := &Converter{ptr: ptr}
	runtime.SetFinalizer(c, (*Converter).Close)
	return c, nil
}

// OpenConverter opens hfDir and detects its architecture from config.json; an unsupported one
// gives ErrUnsupported, with the list of supported ones in the message.
func OpenConverter(hfDir string) (*Converter, error) {
	return openConverter(hfDir, func(dir *C.char, out **C.ferrollm_converter) C.ferrollm_status {
		return C.ferrollm_converter_open(dir, out)
	})
}

// OpenConverterAs opens hfDir as architecture arch, whatever its config.json says.
func OpenConverterAs(hfDir string, arch Arch) (*Converter, error) {
	return openConverter(hfDir, func(dir *C.char, out **C.ferrollm_converter) C.ferrollm_status {
		return C.ferrollm_converter_open_as(dir, C.ferrollm_arch(arch), out)
	})
}

// Arch is the architecture detected (or given).
func (c *Converter) Arch() (Arch, error) {
	var arch C.ferrollm_arch
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_converter_arch(c.ptr, &arch))
	runtime.KeepAlive(c)
	return Arch(arch), err
}

// Convert writes the checkpoint into out (a file path, or a folder where llm-rs' name
// "<model>-f16.gguf" is used) and returns the path written. params may be nil for the defaults,
// progress nil for none; cancelling through progress gives ErrCancelled, and nothing is left
// behind on failure.
func (c *Converter) Convert(out string, params *ConvertParams, progress ProgressFunc) (string, error) {
	cout, err := cString(out, "out")
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(cout))
	var cp *C.ferrollm_convert_params
	if params != nil {
		cp = &C.ferrollm_convert_params{}
		C.ferrollm_convert_default_params(cp)
		cp.container = C.ferrollm_container(params.Container)
		cp.dtype = C.ferrollm_type(params.DType)
	}
	var written *C.char
	err = withCallbacks(progressState(progress), func(h C.uintptr_t) C.ferrollm_status {
		return C.go_converter_convert(c.ptr, cout, cp, h, &written)
	})
	runtime.KeepAlive(c)
	path := takeString(written)
	if err != nil {
		return "", err
	}
	return path, nil
}

// Close frees the converter; calling it again does nothing.
func (c *Converter) Close() error {
	runtime.SetFinalizer(c, nil)
	C.ferrollm_converter_free(c.ptr)
	c.ptr = nil
	return nil
}

// Convert converts the Hugging Face model folder hfDir into out in one call (OpenConverter,
// Convert, Close) and returns the path written.
func Convert(hfDir, out string, params *ConvertParams, progress ProgressFunc) (string, error) {
	c, err := OpenConverter(hfDir)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.Convert(out, params, progress)
}

// Quantize quantizes source (an F32/F16/BF16 model file) to typ in one call (llm-rs'
// Model.quantize). destination is a file path, a folder, or "" for the source's folder (the name
// then follows llm-rs' rules). It returns the path written; an existing target is kept and its path
// returned. progress may be nil.
func Quantize(source, destination string, typ Type, container Container, progress ProgressFunc) (string, error) {
	src, err := cString(source, "source")
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(src))
	dst, err := optCString(destination, "destination")
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(dst))
	var written *C.char
	err = withCallbacks(progressState(progress), func(h C.uintptr_t) C.ferrollm_status {
		return C.go_quantize(src, dst, C.ferrollm_type(typ), C.ferrollm_container(container), h, &written)
	})
	path := takeString(written)
	if err != nil {
		return "", err
	}
	return path, nil
}

// Quantizer is an opened source model, ready to be quantized (llm-rs' AutoQuantizer). It owns a
// ferrollm_quantizer; use it from one goroutine at a time and Close it when done.
type Quantizer struct {
	ptr *C.ferrollm_quantizer
}

// OpenQuantizer opens source and reads its metadata; an already quantized source gives
// ErrUnsupported.
func OpenQuantizer(source string) (*Quantizer, error) {
	src, err := cString(source, "source")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(src))
	var ptr *C.ferrollm_quantizer
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check(C.ferrollm_quantizer_open(src, &ptr)); err != nil {
		return nil, err
	}
	q := &Quantizer{ptr: ptr}
	runtime.SetFinalizer(q, (*Quantizer).Close)
	return q, nil
}

// Quantize writes the source quantized to typ; destination as for the package-level Quantize.
// It may be called again (e.g. for another type).
func (q *Quantizer) Quantize(destination string, typ Type, container Container, progress ProgressFunc) (string, error) {
	dst, err := optCString(destination, "destination")
	if err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(dst))
	var written *C.char
	err = withCallbacks(progressState(progress), func(h C.uintptr_t) C.ferrollm_status {
		return C.go_quantizer_quantize(q.ptr, dst, C.ferrollm_type(typ), C.ferrollm_container(container), h, &written)
	})
	runtime.KeepAlive(q)
	path := takeString(written)
	if err != nil {
		return "", err
	}
	return path, nil
}

// Close frees the quantizer; calling it again does nothing.
func (q *Quantizer) Close() error {
	runtime.SetFinalizer(q, nil)
	C.ferrollm_quantizer_free(q.ptr)
	q.ptr = nil
	return nil
}

// ModelParams are the settings of LoadModel; start from DefaultModelParams (nil means defaults).
type ModelParams struct {
	// ArchAuto, or the architecture of a file that does not name it.
	Architecture Arch
	// Map the file into memory instead of reading it.
	PreferMmap bool
	// A Hugging Face tokenizer.json to use instead of the file's own ("" = the file's own).
	TokenizerPath string
}

// DefaultModelParams are the library's defaults (ferrollm_model_default_params).
func DefaultModelParams() ModelParams {
	var c C.ferrollm_model_params
	C.ferrollm_model_default_params(&c)
	return ModelParams{Architecture: Arch(c.architecture), PreferMmap: bool(c.prefer_mmap)}
}

// ModelInfo holds basic facts about a loaded model.
type ModelInfo struct {
	Arch      Arch
	NVocab    uint32
	NCtxTrain uint32
	NEmbd     uint32
}

// Model is a loaded model. It owns a ferrollm_model and is immutable: any number of goroutines may
// use it at once. Sessions keep what they need, so a Model may be closed before its sessions.
type Model struct {
	ptr *C.ferrollm_model
}

// LoadModel loads a model file (GGUF, GGJT, GGMF, GGML) or the one model file in a folder.
// params may be nil for the defaults.
func LoadModel(path string, params *ModelParams) (*Model, error) {
	cpath, err := cString(path, "path")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cpath))
	var cp *C.ferrollm_model_params
	if params != nil {
		cp = &C.ferrollm_model_params{}
		C.ferrollm_model_default_params(cp)
		cp.architecture = C.ferrollm_arch(params.Architecture)
		cp.prefer_mmap = C.bool(params.PreferMmap)
		tok, err := optCString(params.TokenizerPath, "TokenizerPath")
		if err != nil {
			return nil, err
		}
		defer C.free(unsafe.Pointer(tok))
		cp.tokenizer_path = tok
	}
	var ptr *C.ferrollm_model
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check(C.ferrollm_model_load(cpath, cp, &ptr)); err != nil {
		return nil, err
	}
	m := &Model{ptr: ptr}
	runtime.SetFinalizer(m, (*Model).Close)
	return m, nil
}

// Close frees the model (sessions made from it stay valid); calling it again does nothing. Do not
// call it while other goroutines use the model.
func (m *Model) Close() error {
	runtime.SetFinalizer(m, nil)
	C.ferrollm_model_free(m.ptr)
	m.ptr = nil
	return nil
}

// Info describes the model.
func (m *Model) Info() (ModelInfo, error) {
	var arch C.ferrollm_arch
	var nVocab, nCtx, nEmbd C.uint32_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_model_describe(m.ptr, &arch, &nVocab, &nCtx, &nEmbd))
	runtime.KeepAlive(m)
	if err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{Arch: Arch(arch), NVocab: uint32(nVocab), NCtxTrain: uint32(nCtx), NEmbd: uint32(nEmbd)}, nil
}

// Tokenize returns the token ids of text; with addSpecial, the tokenizer's own special tokens are
// added.
func (m *Model) Tokenize(text string, addSpecial bool) ([]uint32, error) {
	ctext := C.CString(text) // the length is passed, so NUL bytes are fine here
	defer C.free(unsafe.Pointer(ctext))
	n := C.size_t(len(text))
	var need C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer runtime.KeepAlive(m)
	st := C.ferrollm_tokenize(m.ptr, ctext, n, C.bool(addSpecial), nil, 0, &need)
	if st != C.FERROLLM_ERR_BUFFER_TOO_SMALL {
		if err := check(st); err != nil {
			return nil, err
		}
	}
	tokens := make([]uint32, int(need))
	if need == 0 {
		return tokens, nil
	}
	if err := check(C.ferrollm_tokenize(m.ptr, ctext, n, C.bool(addSpecial),
		(*C.uint32_t)(unsafe.Pointer(&tokens[0])), need, &need)); err != nil {
		return nil, err
	}
	return tokens[:int(need)], nil
}

// Detokenize returns the text of tokens.
func (m *Model) Detokenize(tokens []uint32) (string, error) {
	var p *C.uint32_t
	if len(tokens) > 0 {
		p = (*C.uint32_t)(unsafe.Pointer(&tokens[0]))
	}
	var text *C.char
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_detokenize(m.ptr, p, C.size_t(len(tokens)), &text))
	runtime.KeepAlive(m)
	if err != nil {
		return "", err
	}
	return takeString(text), nil
}

// KVType is the element type of a session's key/value cache.
type KVType uint32

const (
	KVF16 KVType = C.FERROLLM_KV_F16
	KVF32 KVType = C.FERROLLM_KV_F32
)

// SessionParams are the settings of NewSession; start from DefaultSessionParams (nil means
// defaults).
type SessionParams struct {
	Threads            uint32 // 0 = one per core
	BatchSize          uint32
	ContextLength      uint32 // 0 = the model's training context
	KVType             KVType
	RopeFrequencyScale float32 // 0 = the model's
	RopeFrequencyBase  float32 // 0 = the model's
}

// DefaultSessionParams are the library's defaults (ferrollm_session_default_params).
func DefaultSessionParams() SessionParams {
	var c C.ferrollm_session_params
	C.ferrollm_session_default_params(&c)
	return SessionParams{
		Threads: uint32(c.threads), BatchSize: uint32(c.batch_size),
		ContextLength: uint32(c.context_length), KVType: KVType(c.kv_type),
		RopeFrequencyScale: float32(c.rope_frequency_scale), RopeFrequencyBase: float32(c.rope_frequency_base),
	}
}

// Session is a KV cache and sampler state over a model. It owns a ferrollm_session; use it from
// one goroutine at a time (give each goroutine its own) and Close it when done.
type Session struct {
	ptr    *C.ferrollm_session
	nVocab int
	nEmbd  int
}

// NewSession creates a session over the model; params may be nil for the defaults.
func (m *Model) NewSession(params *SessionParams) (*Session, error) {
	var cp *C.ferrollm_session_params
	if params != nil {
		cp = &C.ferrollm_session_params{}
		C.ferrollm_session_default_params(cp)
		cp.threads = C.uint32_t(params.Threads)
		cp.batch_size = C.uint32_t(params.BatchSize)
		cp.context_length = C.uint32_t(params.ContextLength)
		cp.kv_type = C.ferrollm_kv_type(params.KVType)
		cp.rope_frequency_scale = C.float(params.RopeFrequencyScale)
		cp.rope_frequency_base = C.float(params.RopeFrequencyBase)
	}
	var ptr *C.ferrollm_session
	var nVocab, nEmbd C.uint32_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_session_new(m.ptr, cp, &ptr))
	if err == nil {
		C.ferrollm_model_describe(m.ptr, nil, &nVocab, nil, &nEmbd)
	}
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	s := &Session{ptr: ptr, nVocab: int(nVocab), nEmbd: int(nEmbd)}
	runtime.SetFinalizer(s, (*Session).Close)
	return s, nil
}

// Close frees the session; calling it again does nothing.
func (s *Session) Close() error {
	runtime.SetFinalizer(s, nil)
	C.ferrollm_session_free(s.ptr)
	s.ptr = nil
	return nil
}

// Reset forgets every token fed to the session.
func (s *Session) Reset() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_session_reset(s.ptr))
	runtime.KeepAlive(s)
	return err
}

// LogitsMode selects which logits Eval returns.
type LogitsMode uint32

const (
	LogitsNone LogitsMode = C.FERROLLM_LOGITS_NONE
	LogitsLast LogitsMode = C.FERROLLM_LOGITS_LAST
	LogitsAll  LogitsMode = C.FERROLLM_LOGITS_ALL
)

// Eval feeds tokens after those already in the session and returns logits per mode: none, the
// last token's NVocab floats, or len(tokens)×NVocab floats.
func (s *Session) Eval(tokens []uint32, mode LogitsMode) ([]float32, error) {
	capacity := 0
	switch mode {
	case LogitsLast:
		capacity = s.nVocab
	case LogitsAll:
		capacity = len(tokens) * s.nVocab
	}
	logits := make([]float32, capacity)
	var tp *C.uint32_t
	if len(tokens) > 0 {
		tp = (*C.uint32_t)(unsafe.Pointer(&tokens[0]))
	}
	var lp *C.float
	if capacity > 0 {
		lp = (*C.float)(unsafe.Pointer(&logits[0]))
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_session_eval(s.ptr, tp, C.size_t(len(tokens)), C.ferrollm_logits_mode(mode), lp, C.size_t(capacity), &n))
	runtime.KeepAlive(s)
	if err != nil {
		return nil, err
	}
	return logits[:int(n)], nil
}

// Embed returns the embedding of text (NEmbd floats); it resets the session.
func (s *Session) Embed(text string) ([]float32, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	e := make([]float32, s.nEmbd)
	var ep *C.float
	if len(e) > 0 {
		ep = (*C.float)(unsafe.Pointer(&e[0]))
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check(C.ferrollm_session_embed(s.ptr, ctext, C.size_t(len(text)), ep, C.size_t(len(e)), &n))
	runtime.KeepAlive(s)
	if err != nil {
		return nil, err
	}
	return e[:int(n)], nil
}

// GenerateParams are the settings of one generation; start from DefaultGenerateParams (nil means
// defaults).
type GenerateParams struct {
	TopK                   uint32  // 0 = all
	TopP                   float32 // in (0, 1]
	Temperature            float32 // 0 = greedy
	RepetitionPenalty      float32 // 1 = off
	RepetitionPenaltyLastN uint32
	Seed                   uint64
	MaxNewTokens           uint32 // 0 = until the end token or a full context
	StopWords              []string
}

// DefaultGenerateParams are the library's defaults (ferrollm_generate_default_params).
func DefaultGenerateParams() GenerateParams {
	var c C.ferrollm_generate_params
	C.ferrollm_generate_default_params(&c)
	return GenerateParams{
		TopK: uint32(c.top_k), TopP: float32(c.top_p), Temperature: float32(c.temperature),
		RepetitionPenalty: float32(c.repetition_penalty), RepetitionPenaltyLastN: uint32(c.repetition_penalty_last_n),
		Seed: uint64(c.seed), MaxNewTokens: uint32(c.max_new_tokens),
	}
}

// StopReason says why generation stopped.
type StopReason uint32

const (
	StopEndToken  StopReason = C.FERROLLM_STOP_END_TOKEN
	StopMaxLength StopReason = C.FERROLLM_STOP_MAX_LENGTH
	StopStopWord  StopReason = C.FERROLLM_STOP_STOP_WORD
	StopCancelled StopReason = C.FERROLLM_STOP_CANCELLED
)

func (r StopReason) String() string {
	switch r {
	case StopEndToken:
		return "end token"
	case StopMaxLength:
		return "max length"
	case StopStopWord:
		return "stop word"
	case StopCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Generation is the result of Generate, copied out of the library's ferrollm_generation.
type Generation struct {
	Text         string
	Tokens       []uint32
	StopReason   StopReason
	PromptTokens int
	PromptMs     float64
	GenerationMs float64
	TotalMs      float64
}

// Generate continues prompt after whatever the session holds, calling onPiece (may be nil) with
// each new piece of text on the calling goroutine. onPiece returning false stops generation; that
// is not an error: the result's StopReason is StopCancelled. A panic inside onPiece stops
// generation and is re-raised once the C call returned.
func (s *Session) Generate(prompt string, params *GenerateParams, onPiece func(piece string) bool) (*Generation, error) {
	cprompt, err := cString(prompt, "prompt")
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cprompt))
	var cp *C.ferrollm_generate_params
	if params != nil {
		cp = &C.ferrollm_generate_params{}
		C.ferrollm_generate_default_params(cp)
		cp.top_k = C.uint32_t(params.TopK)
		cp.top_p = C.float(params.TopP)
		cp.temperature = C.float(params.Temperature)
		cp.repetition_penalty = C.float(params.RepetitionPenalty)
		cp.repetition_penalty_last_n = C.uint32_t(params.RepetitionPenaltyLastN)
		cp.seed = C.uint64_t(params.Seed)
		cp.max_new_tokens = C.uint32_t(params.MaxNewTokens)
		if len(params.StopWords) > 0 {
			// The array and its strings live in C memory (cgo forbids Go pointers to Go pointers).
			array := (**C.char)(C.malloc(C.size_t(len(params.StopWords)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
			words := unsafe.Slice(array, len(params.StopWords))
			for i := range words {
				words[i] = nil
			}
			defer func() {
				for _, w := range words {
					C.free(unsafe.Pointer(w))
				}
				C.free(unsafe.Pointer(array))
			}()
			for i, w := range params.StopWords {
				if words[i], err = cString(w, "stop word"); err != nil {
					return nil, err
				}
			}
			cp.stop_words = array
			cp.n_stop_words = C.size_t(len(words))
		}
	}
	var state *callbackState
	if onPiece != nil {
		state = &callbackState{piece: onPiece}
	}
	var result *C.ferrollm_generation
	defer func() { C.ferrollm_generation_free(result) }()
	err = withCallbacks(state, func(h C.uintptr_t) C.ferrollm_status {
		return C.go_session_generate(s.ptr, cprompt, cp, h, &result)
	})
	runtime.KeepAlive(s)
	if err != nil {
		return nil, err
	}
	g := &Generation{Text: C.GoString(C.ferrollm_generation_text(result))}
	var tokens *C.uint32_t
	var n C.size_t
	C.ferrollm_generation_tokens(result, &tokens, &n)
	if n > 0 {
		g.Tokens = make([]uint32, int(n))
		copy(g.Tokens, unsafe.Slice((*uint32)(unsafe.Pointer(tokens)), int(n)))
	}
	var reason C.ferrollm_stop_reason
	var nPrompt C.size_t
	var pms, gms, tms C.double
	C.ferrollm_generation_info(result, &reason, &nPrompt, &pms, &gms, &tms)
	g.StopReason = StopReason(reason)
	g.PromptTokens = int(nPrompt)
	g.PromptMs, g.GenerationMs, g.TotalMs = float64(pms), float64(gms), float64(tms)
	return g, nil
}
