// The whole flow through the C# wrapper: convert a Hugging Face checkpoint folder to GGUF (F16),
// quantize it to Q4_0, load it, generate a few tokens with streaming, print the result and the
// stop reason.
//
//   mono Flow.exe [CHECKPOINT_DIR] [OUT_DIR] [PROMPT]
//
// CHECKPOINT_DIR defaults to tests/fixtures/hf/gpt2 (run from the repository root): a tiny random
// GPT-2, so the text is gibberish.
//
// Build with Mono (from the repository root, after `cargo build`):
//   mcs -langversion:7.2 -target:library -out:Ferrollm.dll bindings/csharp/src/*.cs
//   mcs -langversion:7.2 -r:Ferrollm.dll -out:Flow.exe examples/csharp/Flow.cs
//   LD_LIBRARY_PATH=target/debug mono Flow.exe
// or with .NET: reference bindings/csharp/Ferrollm.csproj.

using System;
using System.IO;
using System.Text;
using Ferrollm;

internal static class Flow
{
    private static int Main(string[] args)
    {
        string checkpoint = args.Length > 0 ? args[0] : "tests/fixtures/hf/gpt2";
        string outDir = args.Length > 1 ? args[1] : "ferrollm-flow";
        string prompt = args.Length > 2 ? args[2] : "Hello";
        // Model text is UTF-8 whatever the locale says (Mono would print '?' under LANG=C).
        Console.OutputEncoding = new UTF8Encoding(false);
        try
        {
            Console.WriteLine("ferrollm " + Library.Version + " (ABI " + Library.AbiVersion + ")");
            Directory.CreateDirectory(outDir);

            Func<Progress, bool> progress = p =>
            {
                Console.Error.Write("\r{0} {1}/{2} {3,-40}", p.Stage, p.Current, p.Total, p.Tensor);
                if (p.Current == p.Total) Console.Error.WriteLine();
                return true;
            };

            // 1. Convert the checkpoint (architecture detected from config.json) to an F16 GGUF
            //    file in outDir; the library names the file.
            string converted;
            using (Converter converter = Converter.Open(checkpoint))
            {
                converted = converter.Convert(outDir, null, progress);
                Console.WriteLine("converted: " + converted + " (architecture " + (uint)converter.Arch + ")");
            }

            // 2. Quantize to Q4_0 (GGUF) into outDir.
            string quantized = Library.Quantize(converted, outDir, GgmlType.Q4_0, Container.Gguf, progress);
            Console.WriteLine("quantized: " + quantized);

            // 3. Load it; 4. a session and a short generation streamed to standard output.
            using (Model model = Model.Load(quantized))
            using (Session session = model.NewSession())
            {
                Console.WriteLine("prompt: " + prompt + "\n--- streamed:");
                Generation result = session.Generate(prompt, new GenerateParams { MaxNewTokens = 16 }, piece =>
                {
                    Console.Write(piece);
                    return true;
                });
                Console.WriteLine("\n--- result: " + result.Text);
                Console.WriteLine("tokens: " + result.Tokens.Length);
                Console.WriteLine("stop reason: " + StopReasonName(result.StopReason));
            }
            return 0;
        }
        catch (FerrollmException e)
        {
            Console.Error.WriteLine("ferrollm error (" + e.StatusName + "): " + e.Message);
            return 1;
        }
    }

    private static string StopReasonName(StopReason r)
    {
        switch (r)
        {
            case StopReason.EndToken: return "end token";
            case StopReason.MaxLength: return "max length";
            case StopReason.StopWord: return "stop word";
            case StopReason.Cancelled: return "cancelled";
            default: return "unknown";
        }
    }
}
