// Tests of the C# wrapper, compiled together with its sources (mcs -langversion:7.2
// src/*.cs tests/Tests.cs) and run with mono by tests/bindings.rs, which sets:
//   FERROLLM_TEST_MODEL_F16         an F16 model file to quantize
//   FERROLLM_TEST_UNSUPPORTED_MODEL a well-formed GGUF file of an architecture ferrollm lacks
//   FERROLLM_TEST_OUT               an empty scratch folder
//   FERROLLM_TEST_HF_DIR            a Hugging Face checkpoint folder (a tiny GPT-2)
//   FERROLLM_TEST_UNSUPPORTED_HF_DIR a folder whose config.json names an unsupported architecture
// A small runner (no NUnit needed): one line per test and "N passed, N failed"; exit code 1 on any
// failure.

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Ferrollm;

internal sealed class TestFailure : Exception
{
    public TestFailure(string message) : base(message) { }
}

internal sealed class CallbackError : Exception
{
    public CallbackError(string message) : base(message) { }
}

internal static class Tests
{
    private static string f16, unsupported, outDir, hf, unsupportedHf, q4;

    private static void Check(bool condition, string what)
    {
        if (!condition) throw new TestFailure("check failed: " + what);
    }

    private static void Contains(string haystack, string needle)
    {
        if (haystack == null || !haystack.Contains(needle))
            throw new TestFailure("\"" + haystack + "\" does not contain \"" + needle + "\"");
    }

    /// <summary>Runs f, which must throw FerrollmException with status; returns its message.</summary>
    private static string ExpectError(Status status, Action f)
    {
        try
        {
            f();
        }
        catch (FerrollmException e)
        {
            if (e.Status != status)
                throw new TestFailure("expected " + status + ", got " + e.Status + ": " + e.Message);
            Check(!string.IsNullOrEmpty(e.Message), "the exception has a message");
            return e.Message;
        }
        throw new TestFailure("expected a FerrollmException with status " + status);
    }

    private static string Env(string name)
    {
        string v = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrEmpty(v))
        {
            Console.Error.WriteLine(name + " is not set (tests/bindings.rs sets it)");
            Environment.Exit(2);
        }
        return v;
    }

    private static string Greedy(Model model, string prompt)
    {
        var sp = new SessionParams { Threads = 1 };
        using (Session s = model.NewSession(sp))
        {
            var gp = new GenerateParams { Temperature = 0, MaxNewTokens = 10 };
            return s.Generate(prompt, gp).Text;
        }
    }

    private static void Version()
    {
        Check(Library.AbiVersion == Library.HeaderAbiVersion, "ABI version");
        Check(!string.IsNullOrEmpty(Library.Version), "version");
        Check(Library.TypeName(GgmlType.Q4_0) == "q4_0", "type name");
        Check(Library.TypeFromName("Q8_0") == GgmlType.Q8_0, "type from name");
        Contains(ExpectError(Status.InvalidArgument, () => Library.TypeFromName("q9_9")), "q9_9");
    }

    // The C structs mirrored in Native.cs have the sizes the library gives them (the tests are
    // compiled with the wrapper's sources, so they see its internal types).
    private static void StructLayouts()
    {
        NativeModelParams mp;
        Native.ferrollm_model_default_params(out mp);
        Check(mp.struct_size == Marshal.SizeOf(typeof(NativeModelParams)), "ferrollm_model_params size");
        NativeSessionParams sp;
        Native.ferrollm_session_default_params(out sp);
        Check(sp.struct_size == Marshal.SizeOf(typeof(NativeSessionParams)), "ferrollm_session_params size");
        NativeConvertParams cp;
        Native.ferrollm_convert_default_params(out cp);
        Check(cp.struct_size == Marshal.SizeOf(typeof(NativeConvertParams)), "ferrollm_convert_params size");
        NativeGenerateParams gp;
        Native.ferrollm_generate_default_params(out gp);
        Check(gp.struct_size == Marshal.SizeOf(typeof(NativeGenerateParams)), "ferrollm_generate_params size");
        Check(Marshal.OffsetOf(typeof(NativeGenerateParams), "seed") == (IntPtr)24, "seed offset");
        Check(Marshal.OffsetOf(typeof(NativeGenerateParams), "stop_words") == (IntPtr)40, "stop_words offset");
    }

    private static void ConvertThenLoad()
    {
        string dir = Path.Combine(outDir, "converted");
        var reports = new List<Progress>();
        string path;
        using (Converter c = Converter.Open(hf))
        {
            Check(c.Arch == Arch.Gpt2, "detected architecture");
            path = c.Convert(dir, null, p => { reports.Add(p); return true; });
        }
        Check(Path.GetDirectoryName(path) == dir && path.EndsWith("-f16.gguf") && File.Exists(path), "wrote " + path);
        Check(reports.Count > 0 && reports[0].Stage == "convert", "progress reports");
        Progress last = reports[reports.Count - 1];
        Check(last.Total > 0 && last.Current == last.Total, "last report is complete");
        using (Model m = Model.Load(path))
        {
            Check(m.Info.Arch == Arch.Gpt2, "the converted file loads");
        }
        var cp = new ConvertParams();
        Check(cp.Container == Container.Gguf && cp.DType == GgmlType.F16, "defaults");
        cp.Container = Container.Ggjt;
        cp.DType = GgmlType.F32;
        string want = Path.Combine(dir, "gpt2-f32.bin");
        using (Converter manual = Converter.OpenAs(hf, Arch.Gpt2))
        {
            Check(manual.Arch == Arch.Gpt2, "manual architecture");
            Check(manual.Convert(want, cp) == want && File.Exists(want), "F32 GGJT");
        }
        want = Path.Combine(outDir, "one-call.gguf");
        Check(Library.Convert(hf, want) == want, "one-call conversion");
    }

    private static void ConverterErrors()
    {
        string dst = Path.Combine(outDir, "cancelled-f16.gguf");
        Contains(ExpectError(Status.Cancelled, () => Library.Convert(hf, dst, null, p => p.Current < 2)), "cancelled");
        Check(!File.Exists(dst), "no file left");
        string msg = ExpectError(Status.Unsupported, () => Converter.Open(unsupportedHf));
        Contains(msg, "FalconForCausalLM");
        Contains(msg, "not supported");
        string missing = Path.Combine(outDir, "no-such-checkpoint");
        Contains(ExpectError(Status.Io, () => Converter.Open(missing)), missing);
        Converter c = Converter.Open(hf);
        c.Dispose();
        Contains(ExpectError(Status.InvalidArgument, () => { Arch a = c.Arch; }), "converter must not be NULL");
        Contains(ExpectError(Status.InvalidArgument, () => c.Convert(Path.Combine(outDir, "never.gguf"))),
            "converter must not be NULL");
    }

    private static void QuantizeWithProgress()
    {
        var reports = new List<Progress>();
        string dst = Path.Combine(outDir, "model-q4_0.gguf");
        q4 = Library.Quantize(f16, dst, GgmlType.Q4_0, Container.Gguf, p => { reports.Add(p); return true; });
        Check(q4 == dst && File.Exists(q4), "wrote " + q4);
        Check(reports.Count > 0 && reports[0].Stage == "quantize", "progress reports");
        Progress last = reports[reports.Count - 1];
        Check(last.Total > 0 && last.Current == last.Total, "last report is complete");
    }

    private static void QuantizerReuse()
    {
        var q = Quantizer.Open(f16);
        string a = q.Quantize(outDir, GgmlType.Q8_0);
        string b = q.Quantize(Path.Combine(outDir, "reuse-q4_0.gguf"), GgmlType.Q4_0);
        Check(File.Exists(a) && a.Contains("q8_0") && File.Exists(b), "two outputs");
        q.Dispose();
        q.Dispose();
        string never = Path.Combine(outDir, "never.gguf");
        Contains(ExpectError(Status.InvalidArgument, () => q.Quantize(never, GgmlType.Q4_0)),
            "quantizer must not be NULL");
        Check(!File.Exists(never), "no output from a disposed quantizer");
    }

    private static void LoadDescribeTokenize()
    {
        using (Model m = Model.Load(q4))
        {
            ModelInfo info = m.Info;
            Check(info.Arch == Arch.Gpt2 && info.NVocab > 0 && info.NEmbd > 0, "info");
            uint[] tokens = m.Tokenize("Hello world");
            Check(tokens.Length > 0, "tokens");
            Check(m.Detokenize(tokens) == "Hello world", "round trip");
        }
        var p = new ModelParams();
        Check(p.PreferMmap, "mmap is the default");
        p.PreferMmap = false;
        using (Model m = Model.Load(q4, p))
        {
            Check(m.Info.Arch == Arch.Gpt2, "loaded without mmap");
        }
    }

    private static void GenerateStreams()
    {
        using (Model m = Model.Load(q4))
        using (Session s = m.NewSession(new SessionParams { Threads = 1 }))
        {
            var streamed = new StringBuilder();
            int pieces = 0;
            Generation g = s.Generate("Hello", new GenerateParams { MaxNewTokens = 8 },
                piece => { streamed.Append(piece); pieces++; return true; });
            Check(g.Text == streamed.ToString() && pieces > 0, "streamed text equals the result");
            Check(g.StopReason == StopReason.MaxLength || g.StopReason == StopReason.EndToken, "stop reason");
            if (g.StopReason == StopReason.MaxLength) Check(g.Tokens.Length == 8, "8 tokens");
            Check(g.PromptTokens > 0 && g.TotalMs > 0, "info");
            Check(s.Eval(m.Tokenize(" more")).Length == (int)m.Info.NVocab, "eval gives n_vocab logits");
            Check(s.Embed("Hello").Length == (int)m.Info.NEmbd, "embedding of n_embd floats");
        }
    }

    private static void ThreadsShareAModel()
    {
        using (Model m = Model.Load(q4))
        {
            string[] prompts = { "Hello", "The quick brown fox", "Once upon a time" };
            var want = new string[prompts.Length];
            for (int i = 0; i < prompts.Length; i++) want[i] = Greedy(m, prompts[i]);
            Check(want[0].Length > 0, "non-empty greedy text");
            var errors = new List<string>();
            var threads = new List<Thread>();
            for (int t = 0; t < 4; t++)
            {
                int w = t;
                var thread = new Thread(() =>
                {
                    for (int i = 0; i < prompts.Length; i++)
                    {
                        int k = (i + w) % prompts.Length;
                        string got;
                        try
                        {
                            got = Greedy(m, prompts[k]);
                        }
                        catch (Exception e)
                        {
                            got = e.ToString();
                        }
                        if (got != want[k])
                            lock (errors) errors.Add("thread " + w + ": \"" + got + "\" != \"" + want[k] + "\"");
                    }
                });
                threads.Add(thread);
                thread.Start();
            }
            foreach (Thread t in threads) t.Join();
            Check(errors.Count == 0, string.Join("; ", errors));
        }
    }

    private static void CancelledGenerationIsAStopReason()
    {
        using (Model m = Model.Load(q4))
        using (Session s = m.NewSession())
        {
            int calls = 0;
            Generation g = s.Generate("Hello", new GenerateParams { MaxNewTokens = 20 }, piece => ++calls < 2);
            Check(g.StopReason == StopReason.Cancelled && calls == 2, "cancelled after 2 pieces");
        }
    }

    private static void ExceptionInCallbackIsRethrown()
    {
        using (Model m = Model.Load(q4))
        using (Session s = m.NewSession())
        {
            int calls = 0;
            try
            {
                s.Generate("Hello", null, piece => { calls++; throw new CallbackError("from the callback"); });
                throw new TestFailure("Generate returned");
            }
            catch (CallbackError e)
            {
                Check(e.Message == "from the callback", "the callback's exception");
                Contains(e.StackTrace, "ExceptionInCallbackIsRethrown"); // original stack kept
            }
            Check(calls == 1, "not called again after throwing");
            Check(s.Generate("Hello", new GenerateParams { MaxNewTokens = 2 }).Tokens.Length <= 2, "session still works");
        }
        string dst = Path.Combine(outDir, "threw-q4_0.gguf");
        try
        {
            Library.Quantize(f16, dst, GgmlType.Q4_0, Container.Gguf, p => { throw new CallbackError("stop"); });
            throw new TestFailure("Quantize returned");
        }
        catch (CallbackError)
        {
        }
        Check(!File.Exists(dst), "no file left");
    }

    private static void CancelledQuantizationIsAnError()
    {
        string dst = Path.Combine(outDir, "cancelled-q4_0.gguf");
        Contains(ExpectError(Status.Cancelled,
            () => Library.Quantize(f16, dst, GgmlType.Q4_0, Container.Gguf, p => p.Current < 2)), "cancelled");
        Check(!File.Exists(dst), "no file left");
    }

    private static void MissingFile()
    {
        string missing = Path.Combine(outDir, "no-such-model.gguf");
        Contains(ExpectError(Status.Io, () => Model.Load(missing)), missing);
        Contains(ExpectError(Status.Io, () => Quantizer.Open(missing)), missing);
    }

    private static void UnsupportedArchitecture()
    {
        string msg = ExpectError(Status.Unsupported, () => Model.Load(unsupported));
        Contains(msg, unsupported);
        Contains(msg, "not supported");
        Contains(ExpectError(Status.Unsupported, () => Quantizer.Open(q4)), "already quantized");
    }

    private static void DisposedHandles()
    {
        Model m = Model.Load(q4);
        Session s = m.NewSession();
        m.Dispose();
        m.Dispose();
        Check(s.Generate("Hello", new GenerateParams { MaxNewTokens = 2 }).Tokens.Length <= 2, "session outlives model");
        Contains(ExpectError(Status.InvalidArgument, () => { ModelInfo i = m.Info; }), "model must not be NULL");
        Contains(ExpectError(Status.InvalidArgument, () => m.NewSession()), "model must not be NULL");
        s.Dispose();
        Contains(ExpectError(Status.InvalidArgument, () => s.Generate("Hello")), "session must not be NULL");
        Contains(ExpectError(Status.InvalidArgument, () => s.Reset()), "session must not be NULL");
    }

    private static void BadArguments()
    {
        Contains(ExpectError(Status.InvalidArgument,
            () => Library.Quantize(f16, Path.Combine(outDir, "bad.gguf"), (GgmlType)99)), "99");
        Contains(ExpectError(Status.InvalidArgument, () => Model.Load("a\0b")), "NUL");
        using (Model m = Model.Load(q4))
        using (Session s = m.NewSession())
        {
            var gp = new GenerateParams();
            gp.StopWords.Add("ok");
            gp.StopWords.Add("bad\0word");
            Contains(ExpectError(Status.InvalidArgument, () => s.Generate("Hello", gp)), "stop word");
        }
    }

    private static void FinalizersFreeUndisposedHandles()
    {
        for (int i = 0; i < 3; i++)
        {
            Model m = Model.Load(q4);
            m.NewSession();
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    private static int Main()
    {
        f16 = Env("FERROLLM_TEST_MODEL_F16");
        unsupported = Env("FERROLLM_TEST_UNSUPPORTED_MODEL");
        outDir = Env("FERROLLM_TEST_OUT");
        hf = Env("FERROLLM_TEST_HF_DIR");
        unsupportedHf = Env("FERROLLM_TEST_UNSUPPORTED_HF_DIR");
        var tests = new List<KeyValuePair<string, Action>>
        {
            new KeyValuePair<string, Action>("version", Version),
            new KeyValuePair<string, Action>("struct layouts match the library", StructLayouts),
            new KeyValuePair<string, Action>("convert with progress, then load", ConvertThenLoad),
            new KeyValuePair<string, Action>("converter errors", ConverterErrors),
            new KeyValuePair<string, Action>("quantize with progress", QuantizeWithProgress),
            new KeyValuePair<string, Action>("quantizer reused, then disposed", QuantizerReuse),
            new KeyValuePair<string, Action>("load, describe, tokenize", LoadDescribeTokenize),
            new KeyValuePair<string, Action>("generate streams the text", GenerateStreams),
            new KeyValuePair<string, Action>("4 threads share a model", ThreadsShareAModel),
            new KeyValuePair<string, Action>("cancelled generation is a stop reason", CancelledGenerationIsAStopReason),
            new KeyValuePair<string, Action>("exception in a callback is rethrown", ExceptionInCallbackIsRethrown),
            new KeyValuePair<string, Action>("cancelled quantization is an error", CancelledQuantizationIsAnError),
            new KeyValuePair<string, Action>("missing file", MissingFile),
            new KeyValuePair<string, Action>("unsupported architecture", UnsupportedArchitecture),
            new KeyValuePair<string, Action>("disposed handles", DisposedHandles),
            new KeyValuePair<string, Action>("bad arguments", BadArguments),
            new KeyValuePair<string, Action>("finalizers free undisposed handles", FinalizersFreeUndisposedHandles),
        };
        int passed = 0, failed = 0;
        foreach (var t in tests)
        {
            try
            {
                t.Value();
                passed++;
                Console.WriteLine("ok   " + t.Key);
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine("FAIL " + t.Key + ": " + e);
            }
        }
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }
}
