// Tests of the C++ wrapper (bindings/cpp/ferrollm.hpp). Run by tests/bindings.rs, which sets:
//   FERROLLM_TEST_HF_DIR           a Hugging Face checkpoint folder (a tiny GPT-2)
//   FERROLLM_TEST_UNSUPPORTED_HF_DIR a folder whose config.json names an unsupported architecture
//   FERROLLM_TEST_MODEL_F16        an F16 model file to quantize
//   FERROLLM_TEST_UNSUPPORTED_MODEL a well-formed GGUF file of an architecture ferrollm lacks
//   FERROLLM_TEST_OUT              an empty scratch folder
// Prints one line per test and "N passed, N failed"; exits 1 on any failure.

#include "ferrollm.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

int passed = 0, failed = 0;

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) throw Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) +   \
                                   ": check failed: " #cond);                                \
    } while (0)

#define CHECK_CONTAINS(haystack, needle)                                                     \
    do {                                                                                     \
        const std::string h_ = (haystack), n_ = (needle);                                    \
        if (h_.find(n_) == std::string::npos)                                                \
            throw Failure(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": \"" + h_ + \
                          "\" does not contain \"" + n_ + "\"");                              \
    } while (0)

template <typename F>
void run(const char* name, F&& f) {
    try {
        f();
        ++passed;
        std::printf("ok   %s\n", name);
    } catch (const std::exception& e) {
        ++failed;
        std::printf("FAIL %s: %s\n", name, e.what());
    }
}

/// Runs `f`, which must throw ferrollm::Error with `status`; returns the message.
template <typename F>
std::string expect_error(ferrollm::Status status, F&& f) {
    try {
        f();
    } catch (const ferrollm::Error& e) {
        if (e.status() != status) {
            throw Failure(std::string("expected status ") + ferrollm::status_name(status) +
                          ", got " + e.status_name() + ": " + e.what());
        }
        if (std::string(e.what()).empty()) throw Failure("the error has no message");
        return e.what();
    }
    throw Failure(std::string("expected an Error with status ") + ferrollm::status_name(status));
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
        std::fprintf(stderr, "%s is not set (tests/bindings.rs sets it)\n", name);
        std::exit(2);
    }
    return v;
}

bool exists(const std::string& path) { return std::ifstream(path).good(); }

struct TestError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace

int main() {
    const std::string f16 = env("FERROLLM_TEST_MODEL_F16");
    const std::string unsupported = env("FERROLLM_TEST_UNSUPPORTED_MODEL");
    const std::string out = env("FERROLLM_TEST_OUT");
    const std::string hf = env("FERROLLM_TEST_HF_DIR");
    const std::string unsupported_hf = env("FERROLLM_TEST_UNSUPPORTED_HF_DIR");
    std::string q4;

    run("convert with progress, then load", [&] {
        auto conv = ferrollm::Converter::open(hf);
        CHECK(conv.arch() == FERROLLM_ARCH_GPT2);
        std::vector<std::string> stages;
        std::uint64_t last_current = 0, last_total = 0;
        std::string path = conv.convert(out + "/converted", ferrollm::ConvertParams(),
                                        [&](const ferrollm::Progress& p) {
                                            stages.emplace_back(p.stage);
                                            last_current = p.current;
                                            last_total = p.total;
                                            return true;
                                        });
        CHECK(path.rfind(out + "/converted/", 0) == 0);
        CHECK(path.size() > 9 && path.substr(path.size() - 9) == "-f16.gguf");
        CHECK(exists(path));
        CHECK(!stages.empty() && stages.front() == "convert");
        CHECK(last_total > 0 && last_current == last_total);
        CHECK(ferrollm::Model::load(path).info().arch == FERROLLM_ARCH_GPT2);
        // A manual converter, F32 weights in the legacy GGJT container.
        auto manual = ferrollm::Converter::open_as(hf, FERROLLM_ARCH_GPT2);
        CHECK(manual.arch() == FERROLLM_ARCH_GPT2);
        std::string f32 = manual.convert(
            out + "/converted/gpt2-f32.bin",
            ferrollm::ConvertParams().dtype(FERROLLM_TYPE_F32).container(FERROLLM_CONTAINER_GGJT));
        CHECK(f32 == out + "/converted/gpt2-f32.bin" && exists(f32));
        CHECK(ferrollm::convert(hf, out + "/one-call.gguf") == out + "/one-call.gguf");
    });

    run("cancelled conversion is an Error and leaves no file", [&] {
        const std::string dst = out + "/cancelled-f16.gguf";
        auto msg = expect_error(FERROLLM_ERR_CANCELLED, [&] {
            ferrollm::convert(hf, dst, ferrollm::ConvertParams(),
                              [](const ferrollm::Progress& p) { return p.current < 2; });
        });
        CHECK_CONTAINS(msg, "cancelled");
        CHECK(!exists(dst));
    });

    run("unsupported architecture in a checkpoint", [&] {
        auto msg = expect_error(FERROLLM_ERR_UNSUPPORTED,
                                [&] { ferrollm::Converter::open(unsupported_hf); });
        CHECK_CONTAINS(msg, "FalconForCausalLM");
        CHECK_CONTAINS(msg, "not supported");
    });

    run("missing checkpoint folder", [&] {
        const std::string missing = out + "/no-such-checkpoint";
        auto msg = expect_error(FERROLLM_ERR_IO, [&] { ferrollm::Converter::open(missing); });
        CHECK_CONTAINS(msg, missing);
    });

    run("moved-from converter is refused with the library's message", [&] {
        auto conv = ferrollm::Converter::open(hf);
        ferrollm::Converter taken = std::move(conv);
        auto msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { conv.arch(); });
        CHECK_CONTAINS(msg, "converter must not be NULL");
        msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { conv.convert(out + "/never.gguf"); });
        CHECK_CONTAINS(msg, "converter must not be NULL");
        CHECK(!exists(out + "/never.gguf"));
        CHECK(taken.arch() == FERROLLM_ARCH_GPT2);
    });

    run("version", [&] {
        CHECK(ferrollm::abi_version() == FERROLLM_ABI_VERSION);
        CHECK(!std::string(ferrollm::version()).empty());
        CHECK(ferrollm::type_name(FERROLLM_TYPE_Q4_0) == "q4_0");
        CHECK(ferrollm::type_from_name("Q8_0") == FERROLLM_TYPE_Q8_0);
        expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [] { ferrollm::type_from_name("q9_9"); });
    });

    run("quantize with progress", [&] {
        std::vector<ferrollm::Progress> reports;
        std::vector<std::string> stages;
        q4 = ferrollm::quantize(f16, out + "/model-q4_0.gguf", FERROLLM_TYPE_Q4_0,
                                FERROLLM_CONTAINER_GGUF, [&](const ferrollm::Progress& p) {
                                    reports.push_back(p);
                                    stages.emplace_back(p.stage);
                                    return true;
                                });
        CHECK(q4 == out + "/model-q4_0.gguf");
        CHECK(exists(q4));
        CHECK(!reports.empty());
        CHECK(stages.front() == "quantize");
        CHECK(reports.back().current == reports.back().total);
        CHECK(reports.back().total > 0);
    });

    run("quantizer reused for two types", [&] {
        auto q = ferrollm::Quantizer::open(f16);
        std::string a = q.quantize(out + "/reuse-q8_0.gguf", FERROLLM_TYPE_Q8_0);
        std::string b = q.quantize(out + "/reuse-q4_0.gguf", FERROLLM_TYPE_Q4_0);
        CHECK(exists(a) && exists(b));
        // Moving leaves NULL behind, which the library refuses with its own message.
        ferrollm::Quantizer moved = std::move(q);
        auto msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT,
                                [&] { q.quantize(out + "/never.gguf", FERROLLM_TYPE_Q4_0); });
        CHECK_CONTAINS(msg, "quantizer must not be NULL");
        CHECK(!exists(out + "/never.gguf"));
    });

    run("load, describe, tokenize", [&] {
        auto model = ferrollm::Model::load(q4);
        auto info = model.info();
        CHECK(info.arch == FERROLLM_ARCH_GPT2);
        CHECK(info.n_vocab > 0 && info.n_embd > 0);
        auto tokens = model.tokenize("Hello world");
        CHECK(!tokens.empty());
        CHECK(model.detokenize(tokens) == "Hello world");
    });

    run("generate streams the text", [&] {
        auto model = ferrollm::Model::load(q4);
        ferrollm::Session session = model.new_session(ferrollm::SessionParams().threads(1));
        std::string streamed;
        int pieces = 0;
        auto g = session.generate("Hello", ferrollm::GenerateParams().max_new_tokens(8),
                                  [&](std::string_view piece) {
                                      streamed += piece;
                                      ++pieces;
                                      return true;
                                  });
        CHECK(g.stop_reason() == FERROLLM_STOP_MAX_LENGTH || g.stop_reason() == FERROLLM_STOP_END_TOKEN);
        CHECK(g.text() == streamed);
        CHECK(pieces > 0);
        CHECK(g.tokens().size() <= 8);
        CHECK(g.prompt_tokens() > 0);
        if (g.stop_reason() == FERROLLM_STOP_MAX_LENGTH) CHECK(g.tokens().size() == 8);
    });

    run("greedy generation is repeatable", [&] {
        auto model = ferrollm::Model::load(q4);
        auto params = ferrollm::GenerateParams().max_new_tokens(12).temperature(0);
        auto a = model.new_session().generate("The", params).text();
        auto b = model.new_session().generate("The", params).text();
        CHECK(a == b);
        CHECK(!a.empty());
    });

    run("a session outlives its model", [&] {
        ferrollm::Session session;
        {
            auto model = ferrollm::Model::load(q4);
            session = model.new_session();
        }
        auto g = session.generate("Hello", ferrollm::GenerateParams().max_new_tokens(3));
        CHECK(g.tokens().size() <= 3);
    });

    run("callback returning false cancels generation (not an error)", [&] {
        auto model = ferrollm::Model::load(q4);
        auto session = model.new_session();
        int calls = 0;
        auto g = session.generate("Hello", ferrollm::GenerateParams().max_new_tokens(20),
                                  [&](std::string_view) { return ++calls < 2; });
        CHECK(g.stop_reason() == FERROLLM_STOP_CANCELLED);
        CHECK(calls == 2);
        CHECK(std::string(ferrollm::stop_reason_name(g.stop_reason())) == "cancelled");
    });

    run("exception in the piece callback is rethrown after the call", [&] {
        auto model = ferrollm::Model::load(q4);
        auto session = model.new_session();
        int calls = 0;
        bool caught = false;
        try {
            session.generate("Hello", ferrollm::GenerateParams().max_new_tokens(20),
                             [&](std::string_view) -> bool {
                                 ++calls;
                                 throw TestError("from the callback");
                             });
        } catch (const TestError& e) {
            caught = std::string(e.what()) == "from the callback";
        }
        CHECK(caught);
        CHECK(calls == 1);  // the callback was not called again after throwing
        // The session is still usable.
        session.reset();
        CHECK(session.generate("Hello", ferrollm::GenerateParams().max_new_tokens(2)).tokens().size() <= 2);
    });

    run("cancelled quantization is an Error and leaves no file", [&] {
        const std::string dst = out + "/cancelled-q4_0.gguf";
        auto msg = expect_error(FERROLLM_ERR_CANCELLED, [&] {
            ferrollm::quantize(f16, dst, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF,
                               [](const ferrollm::Progress& p) { return p.current < 2; });
        });
        CHECK_CONTAINS(msg, "cancelled");
        CHECK(!exists(dst));
    });

    run("exception in the progress callback is rethrown and leaves no file", [&] {
        const std::string dst = out + "/threw-q4_0.gguf";
        bool caught = false;
        try {
            ferrollm::quantize(f16, dst, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF,
                               [](const ferrollm::Progress&) -> bool { throw TestError("stop"); });
        } catch (const TestError&) {
            caught = true;
        }
        CHECK(caught);
        CHECK(!exists(dst));
    });

    run("missing file", [&] {
        const std::string missing = out + "/no-such-model.gguf";
        auto msg = expect_error(FERROLLM_ERR_IO, [&] { ferrollm::Model::load(missing); });
        CHECK_CONTAINS(msg, missing);
        msg = expect_error(FERROLLM_ERR_IO, [&] { ferrollm::Quantizer::open(missing); });
        CHECK_CONTAINS(msg, missing);
    });

    run("unsupported architecture", [&] {
        auto msg = expect_error(FERROLLM_ERR_UNSUPPORTED, [&] { ferrollm::Model::load(unsupported); });
        CHECK_CONTAINS(msg, unsupported);
        CHECK_CONTAINS(msg, "not supported");
    });

    run("already quantized source is refused", [&] {
        auto msg = expect_error(FERROLLM_ERR_UNSUPPORTED, [&] { ferrollm::Quantizer::open(q4); });
        CHECK_CONTAINS(msg, "already quantized");
    });

    run("moved-from handles are refused with the library's message", [&] {
        auto model = ferrollm::Model::load(q4);
        ferrollm::Model other = std::move(model);
        auto msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { model.info(); });
        CHECK_CONTAINS(msg, "model must not be NULL");
        msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { model.new_session(); });
        CHECK_CONTAINS(msg, "model must not be NULL");
        ferrollm::Session session = other.new_session();
        ferrollm::Session taken = std::move(session);
        msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { session.generate("Hello"); });
        CHECK_CONTAINS(msg, "session must not be NULL");
        ferrollm::Generation empty;
        msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] { empty.stop_reason(); });
        CHECK_CONTAINS(msg, "result must not be NULL");
    });

    run("bad arguments", [&] {
        auto msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] {
            ferrollm::quantize(f16, out + "/bad.gguf", 99);
        });
        CHECK_CONTAINS(msg, "99");
        msg = expect_error(FERROLLM_ERR_INVALID_ARGUMENT, [&] {
            ferrollm::Model::load(std::string_view("a\0b", 3));
        });
        CHECK_CONTAINS(msg, "NUL");
    });

    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
