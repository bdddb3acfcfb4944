// The whole flow through the C++ wrapper (bindings/cpp/ferrollm.hpp): quantize an F16 model to
// Q4_0, load it, generate a few tokens with streaming, print the result and the stop reason.
//
//   flow [MODEL_F16] [OUT_DIR] [PROMPT]
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
    const std::string source = argc > 1 ? argv[1] : "gpt2-f16.gguf";
    const std::string out_dir = argc > 2 ? argv[2] : "ferrollm-flow";
    const std::string prompt = argc > 3 ? argv[3] : "Hello";
    try {
        std::cout << "ferrollm " << ferrollm::version() << " (ABI " << ferrollm::abi_version()
                  << ")\n";
        ::mkdir(out_dir.c_str(), 0777);

        // 1. Quantize to Q4_0 (GGUF) into out_dir; the library names the file.
        const std::string quantized = ferrollm::quantize(
            source, out_dir, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF,
            [](const ferrollm::Progress& p) {
                std::cerr << '\r' << p.stage << ' ' << p.current << '/' << p.total << ' '
                          << p.tensor << "                    ";
                if (p.current == p.total) std::cerr << '\n';
                return true;
            });
        std::cout << "quantized: " << quantized << '\n';

        // 2. Load it; 3. a session and a short generation streamed to standard output.
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
