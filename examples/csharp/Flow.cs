// The whole flow through the C# wrapper: quantize an F16 model to Q4_0, load it, generate a few
// tokens with streaming, print the result and the stop reason.
//
//   mono Flow.exe [MODEL_F16] [OUT_DIR] [PROMPT]
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
        string source = args.Length > 0 ? args[0] : "gpt2-f16.gguf";
        string outDir = args.Length > 1 ? args[1] : "ferrollm-flow";
        string prompt = args.Length > 2 ? args[2] : "Hello";
        // Model text is UTF-8 whatever the locale says (Mono would print '?' under LANG=C).
        Console.OutputEncoding = new UTF8Encoding(false);
        try
        {
            Console.WriteLine("ferrollm " + Library.Version + " (ABI " + Library.AbiVersion + ")");
            Directory.CreateDirectory(outDir);

            // 1. Quantize to Q4_0 (GGUF) into outDir; the library names the file.
            string quantized = Library.Quantize(source, outDir, GgmlType.Q4_0, Container.Gguf, p =>
            {
                Console.Error.Write("\r{0} {1}/{2} {3,-40}", p.Stage, p.Current, p.Total, p.Tensor);
                if (p.Current == p.Total) Console.Error.WriteLine();
                return true;
            });
            Console.WriteLine("quantized: " + quantized);

            // 2. Load it; 3. a session and a short generation streamed to standard output.
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
