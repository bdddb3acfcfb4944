// The whole flow through the C++ wrapper (bindings/cpp/ferrollm.hpp): convert a Hugging Face
// checkpoint folder to GGUF (F16), quantize it to Q4_0, load it, generate a few tokens with
// streaming, print the result and the stop reason.
//
//   flow [CHECKPOINT_DIR] [OUT_DIR] [PROMPT]
//
// CHECKPOINT_DIR defaults to tests/fixtures/hf/gpt2 (run from the repository root): a tiny random
// GPT-2, so the text is gibberish.
//
// Build with CMake (find_package(ferrollm), see examples/cpp/CMakeLists.txt) or by hand:
//   c++ -std=c++17 -Iinclude -Ibindings/cpp examples/cpp/flow.cpp -Ltarget/debug -lferrollm
//       -Wl,-rpath,$PWD/target/debug -o flow

#include "ferrollm.hpp"

#include <cstdio>
#include <iostream>
#include <string>
#include <sys/stat.h>

int main(int argc, char** argv) {
    const std::string checkpoint = argc > 1 ? argv[1] : "tests/fixtures/hf/gpt2";
    const std::string out_dir = argc > 2 ? argv[2] : "ferrollm-flow";
    const std::string prompt = argc > 3 ? argv[3] : "Hello";
    try {
        std::cout << "ferrollm " << ferrollm::version() << " (ABI " << ferrollm::abi_version()
                  << ")\n";
        ::mkdir(out_dir.c_str(), 0777);

        const auto progress = [](const ferrollm::Progress& p) {
            std::cerr << '\r' << p.stage << ' ' << p.current << '/' << p.total << ' ' << p.tensor
                      << "                    ";
            if (p.current == p.total) std::cerr << '\n';
            return true;
        };

        // 1. Convert the checkpoint (architecture detected from config.json) to an F16 GGUF file
        //    in out_dir; the library names the file.
        const ferrollm::Converter converter = ferrollm::Converter::open(checkpoint);
        const std::string converted =
            converter.convert(out_dir, ferrollm::ConvertParams(), progress);
        std::cout << "converted: " << converted << " (architecture " << converter.arch() << ")\n";

        // 2. Quantize to Q4_0 (GGUF) into out_dir.
        const std::string quantized = ferrollm::quantize(
            converted, out_dir, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF, progress);
        std::cout << "quantized: " << quantized << '\n';

        // 3. Load it; 4. a session and a short generation streamed to standard output.
        const ferrollm::Model model = ferrollm::Model::load(quantized);
        ferrollm::Session session = model.new_session();
        std::cout << "prompt: " << prompt << "\n--- streamed:\n";
        const ferrollm::Generation result =
            session.generate(prompt, ferrollm::GenerateParams().max_new_tokens(16),
                             [](std::string_view piece) {
                                 std::cout << piece << std::flush;
                                 return true;
                             });
        std::cout << "\n--- result: " << result.text() << '\n'
                  << "tokens: " << result.tokens().size() << '\n'
                  << "stop reason: " << ferrollm::stop_reason_name(result.stop_reason()) << '\n';
        return 0;
    } catch (const ferrollm::Error& e) {
        std::cerr << "ferrollm error (" << e.status_name() << "): " << e.what() << '\n';
        return 1;
    }
}
