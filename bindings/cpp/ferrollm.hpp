// ferrollm.hpp — header-only C++17 wrapper over the C API in ferrollm.h.
//
// Every class is a move-only RAII owner of one C handle and frees it through the C API:
//
//   Converter  -> ferrollm_converter   (ferrollm_converter_free)
//   Quantizer  -> ferrollm_quantizer   (ferrollm_quantizer_free)
//   Model      -> ferrollm_model       (ferrollm_model_free)
//   Session    -> ferrollm_session     (ferrollm_session_free)
//   Generation -> ferrollm_generation  (ferrollm_generation_free)
//
// Errors: every failing C call throws ferrollm::Error, which carries the C status code and the
// library's message (ferrollm_last_error(), read on the calling thread right after the call).
// A moved-from object holds NULL; using it passes NULL to the library, which refuses it with
// FERROLLM_ERR_INVALID_ARGUMENT ("model must not be NULL"), so it also throws ferrollm::Error.
//
// Strings: std::string_view in (copied into a NUL-terminated buffer for the call; a view holding a
// NUL byte throws FERROLLM_ERR_INVALID_ARGUMENT), std::string out (strings the library allocates are
// copied and freed with ferrollm_string_free before the function returns).
//
// Callbacks: std::function, called on the thread that made the call, during the call only. A
// callback that throws never lets the exception cross the C boundary: the trampoline catches it,
// returns false (which cancels the work), and the exception is rethrown once the C call returned
// and everything it produced was freed.
//
// Threads: a Model may be shared by any number of threads; a Session (and a Generation) belongs
// to one thread at a time. This is the C API's rule; the wrapper adds no locking.

#ifndef FERROLLM_HPP
#define FERROLLM_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ferrollm.h"

namespace ferrollm {

using Status = ferrollm_status;
using Arch = ferrollm_arch;
using Type = ferrollm_type;
using Container = ferrollm_container;
using StopReason = ferrollm_stop_reason;
using LogitsMode = ferrollm_logits_mode;
using Token = std::uint32_t;

/// A failed call: the C status code and the library's message for it.
class Error : public std::runtime_error {
public:
    Error(Status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}
    /// The FERROLLM_ERR_* code.
    Status status() const noexcept { return status_; }
    /// The code's static name ("I/O error", "cancelled", …).
    const char* status_name() const noexcept { return ferrollm_status_name(status_); }

private:
    Status status_;
};

namespace detail {

/// Throws ferrollm::Error for a failed status; call right after the C call, on the same thread.
inline void check(Status status) {
    if (status != FERROLLM_OK) {
        const char* message = ferrollm_last_error();
        throw Error(status, message ? message : "");
    }
}

/// A NUL-terminated copy of `s` for a C call.
inline std::string c_string(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos) {
        throw Error(FERROLLM_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
    }
    return std::string(s);
}

/// Takes ownership of a string the library allocated: copies it, frees the original.
inline std::string take_string(char* s) {
    if (s == nullptr) return std::string();
    std::string copy(s);
    ferrollm_string_free(s);
    return copy;
}

/// Owns a library string until it is taken (so it is freed even if something throws).
struct OwnedString {
    char* ptr = nullptr;
    OwnedString() = default;
    OwnedString(const OwnedString&) = delete;
    OwnedString& operator=(const OwnedString&) = delete;
    ~OwnedString() { ferrollm_string_free(ptr); }
    std::string take() {
        char* p = ptr;
        ptr = nullptr;
        return take_string(p);
    }
};

/// A move-only owner of a C handle `T*`, freed with `Free`.
template <typename T, void (*Free)(T*)>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(T* ptr) noexcept : ptr_(ptr) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle(Handle&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)) {}
    Handle& operator=(Handle&& other) noexcept {
        if (this != &other) {
            Free(ptr_);
            ptr_ = std::exchange(other.ptr_, nullptr);
        }
        return *this;
    }
    ~Handle() { Free(ptr_); }
    T* get() const noexcept { return ptr_; }
    T* release() noexcept { return std::exchange(ptr_, nullptr); }

private:
    T* ptr_ = nullptr;
};

}  // namespace detail

/// The library's version ("0.1.0"). Static storage.
inline const char* version() noexcept { return ferrollm_version(); }
/// The loaded library's ABI version; equals FERROLLM_ABI_VERSION when header and library match.
inline std::uint32_t abi_version() noexcept { return ferrollm_abi_version(); }
/// The static name of a status code.
inline const char* status_name(Status status) noexcept { return ferrollm_status_name(status); }
/// The ggml name of a type ("q4_0"); throws FERROLLM_ERR_INVALID_ARGUMENT for an unknown id.
inline std::string type_name(Type type) {
    const char* name = ferrollm_type_name(type);
    if (name == nullptr) {
        throw Error(FERROLLM_ERR_INVALID_ARGUMENT,
                    "type = " + std::to_string(type) + " is not a ggml type id");
    }
    return name;
}
/// The type named `name` ("q4_0", "Q4_K", any case).
inline Type type_from_name(std::string_view name) {
    Type type = 0;
    detail::check(ferrollm_type_from_name(detail::c_string(name, "name").c_str(), &type));
    return type;
}

/// One progress report of a long job; the views are valid only during the callback.
struct Progress {
    std::string_view stage;   ///< "convert", "quantize", …
    std::string_view tensor;  ///< the tensor being processed, or "" between tensors
    std::uint64_t current = 0;
    std::uint64_t total = 0;
};

/// Called during long work; return false to cancel it (the call then throws Error with
/// FERROLLM_ERR_CANCELLED and leaves no output file).
using ProgressCallback = std::function<bool(const Progress&)>;

/// Receives each new piece of generated text (valid only during the call); return false to stop
/// generating (the Generation then says FERROLLM_STOP_CANCELLED — not an error).
using PieceCallback = std::function<bool(std::string_view)>;

namespace detail {

struct ProgressState {
    const ProgressCallback* callback;
    std::exception_ptr error;
};

inline bool progress_trampoline(const ferrollm_progress* p, void* user_data) noexcept {
    auto* state = static_cast<ProgressState*>(user_data);
    try {
        Progress report;
        report.stage = p->stage ? p->stage : "";
        report.tensor = p->tensor ? p->tensor : "";
        report.current = p->current;
        report.total = p->total;
        return (*state->callback)(report);
    } catch (...) {
        state->error = std::current_exception();
        return false;
    }
}

struct PieceState {
    const PieceCallback* callback;
    std::exception_ptr error;
};

inline bool piece_trampoline(const char* piece, std::size_t len, void* user_data) noexcept {
    auto* state = static_cast<PieceState*>(user_data);
    try {
        return (*state->callback)(std::string_view(piece, len));
    } catch (...) {
        state->error = std::current_exception();
        return false;
    }
}

/// Runs a C call that takes (ferrollm_progress_fn, void*): `call(fn, user_data)` returns a
/// status. An exception thrown by the callback is rethrown here in place of the status.
template <typename Call>
void with_progress(const ProgressCallback& callback, Call&& call) {
    if (!callback) {
        check(call(nullptr, nullptr));
        return;
    }
    ProgressState state{&callback, nullptr};
    Status status = call(&progress_trampoline, &state);
    if (state.error) std::rethrow_exception(state.error);
    check(status);
}

}  // namespace detail

/// Settings for a conversion; starts from the library's defaults (ferrollm_convert_default_params:
/// GGUF, F16 weights). The C struct is public: set any field of it directly.
class ConvertParams {
public:
    ConvertParams() { detail::check(ferrollm_convert_default_params(&c)); }
    /// FERROLLM_CONTAINER_GGUF (default), _GGJT or _GGML.
    ConvertParams& container(Container container) {
        c.container = container;
        return *this;
    }
    /// Type of the weight matrices: FERROLLM_TYPE_F16 (default) or FERROLLM_TYPE_F32.
    ConvertParams& dtype(Type type) {
        c.dtype = type;
        return *this;
    }
    ferrollm_convert_params c{};
};

/// An opened Hugging Face model folder (config.json, safetensors, tokenizer.json), ready to
/// convert (llm-rs' AutoConverter, or a manual converter with open_as). Owns a
/// ferrollm_converter. Use from one thread at a time.
class Converter {
public:
    /// Opens `hf_dir` and detects its architecture; an unsupported one throws
    /// FERROLLM_ERR_UNSUPPORTED listing the supported ones.
    static Converter open(std::string_view hf_dir) {
        ferrollm_converter* c = nullptr;
        detail::check(ferrollm_converter_open(detail::c_string(hf_dir, "hf_dir").c_str(), &c));
        return Converter(c);
    }
    /// Opens `hf_dir` as architecture `arch`, whatever its config.json says.
    static Converter open_as(std::string_view hf_dir, Arch arch) {
        ferrollm_converter* c = nullptr;
        detail::check(
            ferrollm_converter_open_as(detail::c_string(hf_dir, "hf_dir").c_str(), arch, &c));
        return Converter(c);
    }
    Converter() noexcept = default;

    /// The architecture detected (or given).
    Arch arch() const {
        Arch a = FERROLLM_ARCH_AUTO;
        detail::check(ferrollm_converter_arch(handle_.get(), &a));
        return a;
    }

    /// Converts into `out` (a file path, or a folder where llm-rs' name is used) and returns the
    /// path written. Cancelling through `progress` throws FERROLLM_ERR_CANCELLED; nothing is left
    /// behind on failure.
    std::string convert(std::string_view out, const ConvertParams& params = ConvertParams(),
                        const ProgressCallback& progress = {}) const {
        const std::string o = detail::c_string(out, "out");
        detail::OwnedString written;
        detail::with_progress(progress, [&](ferrollm_progress_fn fn, void* ud) {
            return ferrollm_converter_convert(handle_.get(), o.c_str(), &params.c, fn, ud,
                                              &written.ptr);
        });
        return written.take();
    }

    /// The C handle (still owned by this object).
    ferrollm_converter* get() const noexcept { return handle_.get(); }

private:
    explicit Converter(ferrollm_converter* c) noexcept : handle_(c) {}
    detail::Handle<ferrollm_converter, ferrollm_converter_free> handle_;
};

/// Converts the Hugging Face model folder `hf_dir` into `out` in one call (Converter::open, then
/// convert). Returns the path written.
inline std::string convert(std::string_view hf_dir, std::string_view out,
                           const ConvertParams& params = ConvertParams(),
                           const ProgressCallback& progress = {}) {
    return Converter::open(hf_dir).convert(out, params, progress);
}

/// Quantizes `source` (an F32/F16/BF16 model file) to `type` in one call (llm-rs' Model.quantize).
/// `destination`: a file path, a folder, or "" for the source's folder (the name then follows
/// llm-rs' rules). Returns the path written. An existing target is kept and its path returned.
inline std::string quantize(std::string_view source, std::string_view destination, Type type,
                            Container container = FERROLLM_CONTAINER_GGUF,
                            const ProgressCallback& progress = {}) {
    const std::string src = detail::c_string(source, "source");
    const std::string dst = detail::c_string(destination, "destination");
    detail::OwnedString written;
    detail::with_progress(progress, [&](ferrollm_progress_fn fn, void* ud) {
        return ferrollm_quantize(src.c_str(), dst.empty() ? nullptr : dst.c_str(), type, container,
                                 fn, ud, &written.ptr);
    });
    return written.take();
}

/// An opened source model, ready to be quantized (llm-rs' AutoQuantizer). Owns a
/// ferrollm_quantizer. Use from one thread at a time.
class Quantizer {
public:
    /// Opens `source` and reads its metadata; an already quantized source throws
    /// FERROLLM_ERR_UNSUPPORTED.
    static Quantizer open(std::string_view source) {
        ferrollm_quantizer* q = nullptr;
        detail::check(ferrollm_quantizer_open(detail::c_string(source, "source").c_str(), &q));
        return Quantizer(q);
    }
    Quantizer() noexcept = default;

    /// Quantizes to `type` in `container`; `destination` as for ferrollm::quantize(). Returns the
    /// path written. May be called again (e.g. for another type).
    std::string quantize(std::string_view destination, Type type,
                         Container container = FERROLLM_CONTAINER_GGUF,
                         const ProgressCallback& progress = {}) const {
        const std::string dst = detail::c_string(destination, "destination");
        detail::OwnedString written;
        detail::with_progress(progress, [&](ferrollm_progress_fn fn, void* ud) {
            return ferrollm_quantizer_quantize(handle_.get(), dst.empty() ? nullptr : dst.c_str(),
                                               type, container, fn, ud, &written.ptr);
        });
        return written.take();
    }

    /// The C handle (still owned by this object), e.g. for a C function this wrapper lacks.
    ferrollm_quantizer* get() const noexcept { return handle_.get(); }

private:
    explicit Quantizer(ferrollm_quantizer* q) noexcept : handle_(q) {}
    detail::Handle<ferrollm_quantizer, ferrollm_quantizer_free> handle_;
};

/// Settings for Model::load(); starts from the library's defaults (ferrollm_model_default_params).
class ModelParams {
public:
    ModelParams() { detail::check(ferrollm_model_default_params(&raw_)); }
    /// FERROLLM_ARCH_AUTO (default) or the architecture of a file that does not name it.
    ModelParams& architecture(Arch arch) {
        raw_.architecture = arch;
        return *this;
    }
    /// Map the file into memory (default) or read it.
    ModelParams& prefer_mmap(bool mmap) {
        raw_.prefer_mmap = mmap;
        return *this;
    }
    /// A tokenizer.json to use instead of the file's own ("" = the file's own).
    ModelParams& tokenizer_path(std::string_view path) {
        tokenizer_path_ = detail::c_string(path, "tokenizer_path");
        return *this;
    }
    /// The C struct for a call; valid while this object lives and is not modified.
    const ferrollm_model_params* c_params() {
        raw_.tokenizer_path = tokenizer_path_.empty() ? nullptr : tokenizer_path_.c_str();
        return &raw_;
    }

private:
    ferrollm_model_params raw_{};
    std::string tokenizer_path_;
};

/// Facts about a loaded model (ferrollm_model_describe).
struct ModelInfo {
    Arch arch = FERROLLM_ARCH_AUTO;
    std::uint32_t n_vocab = 0;
    std::uint32_t n_ctx_train = 0;
    std::uint32_t n_embd = 0;
};

class Session;
class SessionParams;

/// A loaded model. Owns a ferrollm_model. Immutable: any number of threads may call its const
/// methods and make sessions from it at the same time. Sessions keep what they need, so a Model
/// may be destroyed before its sessions.
class Model {
public:
    /// Loads a model file (GGUF, GGJT, GGMF, GGML) or the one model file in a folder.
    static Model load(std::string_view path, ModelParams params = ModelParams()) {
        ferrollm_model* m = nullptr;
        detail::check(ferrollm_model_load(detail::c_string(path, "path").c_str(),
                                          params.c_params(), &m));
        return Model(m);
    }
    Model() noexcept = default;

    ModelInfo info() const {
        ModelInfo i;
        detail::check(
            ferrollm_model_describe(handle_.get(), &i.arch, &i.n_vocab, &i.n_ctx_train, &i.n_embd));
        return i;
    }

    /// Token ids of `text`; with `add_special`, the tokenizer's own special tokens are added.
    std::vector<Token> tokenize(std::string_view text, bool add_special = false) const {
        std::size_t n = 0;
        Status st = ferrollm_tokenize(handle_.get(), text.data(), text.size(), add_special, nullptr,
                                      0, &n);
        if (st != FERROLLM_ERR_BUFFER_TOO_SMALL) detail::check(st);
        std::vector<Token> tokens(n);
        if (n > 0) {
            detail::check(ferrollm_tokenize(handle_.get(), text.data(), text.size(), add_special,
                                            tokens.data(), tokens.size(), &n));
            tokens.resize(n);
        }
        return tokens;
    }

    /// The text of `tokens`.
    std::string detokenize(const std::vector<Token>& tokens) const {
        detail::OwnedString text;
        detail::check(ferrollm_detokenize(handle_.get(), tokens.data(), tokens.size(), &text.ptr));
        return text.take();
    }

    /// A new session over this model (defined after Session).
    Session new_session() const;
    Session new_session(const SessionParams& params) const;

    /// The C handle (still owned by this object).
    ferrollm_model* get() const noexcept { return handle_.get(); }

private:
    explicit Model(ferrollm_model* m) noexcept : handle_(m) {}
    detail::Handle<ferrollm_model, ferrollm_model_free> handle_;
};

/// Settings for a session; starts from the library's defaults (ferrollm_session_default_params).
/// The C struct is public: set any field of it directly.
class SessionParams {
public:
    SessionParams() { detail::check(ferrollm_session_default_params(&c)); }
    SessionParams& threads(std::uint32_t n) {
        c.threads = n;
        return *this;
    }
    SessionParams& context_length(std::uint32_t n) {
        c.context_length = n;
        return *this;
    }
    SessionParams& batch_size(std::uint32_t n) {
        c.batch_size = n;
        return *this;
    }
    ferrollm_session_params c{};
};

/// Settings of one generation; starts from the library's defaults
/// (ferrollm_generate_default_params). The C struct is public except its stop words, which this
/// object owns.
class GenerateParams {
public:
    GenerateParams() { detail::check(ferrollm_generate_default_params(&c)); }
    GenerateParams& max_new_tokens(std::uint32_t n) {
        c.max_new_tokens = n;
        return *this;
    }
    /// 0 = greedy.
    GenerateParams& temperature(float t) {
        c.temperature = t;
        return *this;
    }
    GenerateParams& top_k(std::uint32_t k) {
        c.top_k = k;
        return *this;
    }
    GenerateParams& top_p(float p) {
        c.top_p = p;
        return *this;
    }
    GenerateParams& repetition_penalty(float p) {
        c.repetition_penalty = p;
        return *this;
    }
    GenerateParams& seed(std::uint64_t s) {
        c.seed = s;
        return *this;
    }
    GenerateParams& stop_words(std::vector<std::string> words) {
        for (const auto& w : words) detail::c_string(w, "stop word");
        stop_words_ = std::move(words);
        return *this;
    }
    /// The C struct for a call; valid while this object lives and is not modified.
    const ferrollm_generate_params* c_params() {
        stop_word_ptrs_.clear();
        for (const auto& w : stop_words_) stop_word_ptrs_.push_back(w.c_str());
        c.stop_words = stop_word_ptrs_.empty() ? nullptr : stop_word_ptrs_.data();
        c.n_stop_words = stop_word_ptrs_.size();
        return &c;
    }
    ferrollm_generate_params c{};

private:
    std::vector<std::string> stop_words_;
    std::vector<const char*> stop_word_ptrs_;
};

/// The result of a generation. Owns a ferrollm_generation.
class Generation {
public:
    Generation() noexcept = default;
    /// The generated text.
    std::string text() const {
        const char* t = ferrollm_generation_text(handle_.get());
        if (t == nullptr) {
            throw Error(FERROLLM_ERR_INVALID_ARGUMENT, "result must not be NULL");
        }
        return t;
    }
    /// The generated token ids.
    std::vector<Token> tokens() const {
        const Token* p = nullptr;
        std::size_t n = 0;
        detail::check(ferrollm_generation_tokens(handle_.get(), &p, &n));
        return std::vector<Token>(p, p + n);
    }
    /// FERROLLM_STOP_END_TOKEN, _MAX_LENGTH, _STOP_WORD or _CANCELLED.
    StopReason stop_reason() const {
        StopReason r = 0;
        detail::check(ferrollm_generation_info(handle_.get(), &r, nullptr, nullptr, nullptr, nullptr));
        return r;
    }
    /// The number of prompt tokens fed.
    std::size_t prompt_tokens() const {
        std::size_t n = 0;
        detail::check(ferrollm_generation_info(handle_.get(), nullptr, &n, nullptr, nullptr, nullptr));
        return n;
    }
    /// Milliseconds spent feeding the prompt, generating, and in total.
    struct Times {
        double prompt_ms = 0, generation_ms = 0, total_ms = 0;
    };
    Times times() const {
        Times t;
        detail::check(ferrollm_generation_info(handle_.get(), nullptr, nullptr, &t.prompt_ms,
                                               &t.generation_ms, &t.total_ms));
        return t;
    }
    ferrollm_generation* get() const noexcept { return handle_.get(); }

private:
    friend class Session;
    explicit Generation(ferrollm_generation* g) noexcept : handle_(g) {}
    detail::Handle<ferrollm_generation, ferrollm_generation_free> handle_;
};

/// The name of a stop reason ("end token", "max length", "stop word", "cancelled").
inline const char* stop_reason_name(StopReason r) noexcept {
    switch (r) {
        case FERROLLM_STOP_END_TOKEN: return "end token";
        case FERROLLM_STOP_MAX_LENGTH: return "max length";
        case FERROLLM_STOP_STOP_WORD: return "stop word";
        case FERROLLM_STOP_CANCELLED: return "cancelled";
        default: return "unknown";
    }
}

/// A session over a model: KV cache and sampler state. Owns a ferrollm_session. One thread at a
/// time; give each thread its own.
class Session {
public:
    Session() noexcept = default;
    explicit Session(const Model& model, const SessionParams& params = SessionParams()) {
        ferrollm_session* s = nullptr;
        detail::check(ferrollm_session_new(model.get(), &params.c, &s));
        handle_ = decltype(handle_)(s);
        n_vocab_ = model.info().n_vocab;
        n_embd_ = model.info().n_embd;
    }

    /// Generates a continuation of `prompt` after what the session holds, streaming each piece of
    /// text to `on_piece` (may be empty). Returning false from it stops generation; the result then
    /// says FERROLLM_STOP_CANCELLED. An exception from `on_piece` stops generation and is rethrown.
    Generation generate(std::string_view prompt, GenerateParams params = GenerateParams(),
                        const PieceCallback& on_piece = {}) {
        const std::string p = detail::c_string(prompt, "prompt");
        ferrollm_generation* raw = nullptr;
        detail::PieceState state{&on_piece, nullptr};
        Status st = ferrollm_session_generate(handle_.get(), p.c_str(), params.c_params(),
                                              on_piece ? &detail::piece_trampoline : nullptr,
                                              &state, &raw);
        Generation result(raw);  // freed if anything below throws
        if (state.error) std::rethrow_exception(state.error);
        detail::check(st);
        return result;
    }

    /// Feeds `tokens` and returns logits per `mode` (none, the last token's n_vocab floats, or
    /// n × n_vocab floats).
    std::vector<float> eval(const std::vector<Token>& tokens, LogitsMode mode = FERROLLM_LOGITS_LAST) {
        std::size_t cap = mode == FERROLLM_LOGITS_ALL ? tokens.size() * n_vocab_
                        : mode == FERROLLM_LOGITS_LAST ? n_vocab_ : 0;
        std::vector<float> logits(cap);
        std::size_t n = 0;
        detail::check(ferrollm_session_eval(handle_.get(), tokens.data(), tokens.size(), mode,
                                            logits.data(), logits.size(), &n));
        logits.resize(n);
        return logits;
    }

    /// The embedding of `text` (n_embd floats); resets the session.
    std::vector<float> embed(std::string_view text) {
        std::vector<float> e(n_embd_);
        std::size_t n = 0;
        detail::check(ferrollm_session_embed(handle_.get(), text.data(), text.size(), e.data(),
                                             e.size(), &n));
        e.resize(n);
        return e;
    }

    /// Forgets every token fed.
    void reset() { detail::check(ferrollm_session_reset(handle_.get())); }

    ferrollm_session* get() const noexcept { return handle_.get(); }

private:
    detail::Handle<ferrollm_session, ferrollm_session_free> handle_;
    std::size_t n_vocab_ = 0;
    std::size_t n_embd_ = 0;
};

inline Session Model::new_session() const { return Session(*this); }
inline Session Model::new_session(const SessionParams& params) const {
    return Session(*this, params);
}

}  // namespace ferrollm

#endif  // FERROLLM_HPP
