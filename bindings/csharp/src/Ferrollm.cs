// C# wrapper over the ferrollm C API (include/ferrollm.h). C# 7.2 (Mono's mcs -langversion:7.2)
// and .NET Standard 2.0.
//
// Ownership: Converter, Quantizer, Model and Session each own one C handle through a SafeHandle subclass;
// Dispose frees it (and the SafeHandle's finalizer does if Dispose was never called). Using a
// disposed object passes NULL to the library, which refuses it with Status.InvalidArgument and its
// own message ("model must not be NULL") — thrown as FerrollmException like every other failure.
// Strings and results the library returns are copied into managed objects and freed before the
// method returns.
//
// Errors: every failing call throws FerrollmException with the C status and the library's message
// (ferrollm_last_error, read on the same thread right after the call).
//
// Callbacks: Func<...> delegates, called on the calling thread during the call only. The native
// delegate is kept alive until the call returns. An exception thrown inside a callback never
// crosses into native code: it is caught, the work is cancelled, and it is rethrown (with its
// original stack trace) once the native call returned.
//
// Threads: a Model may be used by any number of threads at once; a Session, a Converter and a
// Quantizer by one at a time.
//
// Finding the library: DllImport("ferrollm") loads libferrollm.so; put its folder on
// LD_LIBRARY_PATH (e.g. target/debug of the repository), or add a Mono dllmap.

using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Ferrollm
{
    /// <summary>The ferrollm_status codes.</summary>
    public enum Status : uint
    {
        Ok = 0,
        InvalidArgument = 1,
        Io = 2,
        Format = 3,
        Unsupported = 4,
        Cancelled = 5,
        BufferTooSmall = 6,
        ContextFull = 7,
        Panic = 8,
    }

    /// <summary>A model architecture (ferrollm_arch).</summary>
    public enum Arch : uint
    {
        Auto = 0,
        Gpt2 = 1,
        GptJ = 2,
        GptNeoX = 3,
        Llama = 4,
        Mpt = 5,
        Bloom = 6,
    }

    /// <summary>A ggml tensor type (ferrollm_type).</summary>
    public enum GgmlType : uint
    {
        F32 = 0,
        F16 = 1,
        Q4_0 = 2,
        Q4_1 = 3,
        Q5_0 = 6,
        Q5_1 = 7,
        Q8_0 = 8,
        Q2_K = 10,
        Q3_K = 11,
        Q4_K = 12,
        Q5_K = 13,
        Q6_K = 14,
        BF16 = 30,
    }

    /// <summary>A file container (ferrollm_container).</summary>
    public enum Container : uint
    {
        Gguf = 0,
        Ggjt = 1,
        Ggml = 2,
    }

    /// <summary>Why generation stopped (ferrollm_stop_reason).</summary>
    public enum StopReason : uint
    {
        EndToken = 0,
        MaxLength = 1,
        StopWord = 2,
        Cancelled = 3,
    }

    /// <summary>Which logits Session.Eval returns (ferrollm_logits_mode).</summary>
    public enum LogitsMode : uint
    {
        None = 0,
        Last = 1,
        All = 2,
    }

    /// <summary>Element type of a session's key/value cache (ferrollm_kv_type).</summary>
    public enum KvType : uint
    {
        F16 = 0,
        F32 = 1,
    }

    /// <summary>A failed call: the C status and the library's message for it.</summary>
    public class FerrollmException : Exception
    {
        public FerrollmException(Status status, string message) : base(message)
        {
            Status = status;
        }

        /// <summary>The status code of the failed call.</summary>
        public Status Status { get; private set; }

        /// <summary>The library's name for the status ("I/O error", "cancelled", …).</summary>
        public string StatusName
        {
            get { return Utf8.Decode(Native.ferrollm_status_name((uint)Status)); }
        }
    }

    /// <summary>One progress report of a long job.</summary>
    public struct Progress
    {
        /// <summary>"convert", "quantize", …</summary>
        public string Stage;
        /// <summary>The tensor being processed, or "" between tensors.</summary>
        public string Tensor;
        public ulong Current;
        public ulong Total;
    }

    internal static class Utf8
    {
        /// <summary>NUL-terminated UTF-8 bytes of s; null for null. A NUL inside is refused.</summary>
        internal static byte[] Encode(string s, string what)
        {
            if (s == null) return null;
            if (s.IndexOf('\0') >= 0)
                throw new FerrollmException(Status.InvalidArgument, what + " contains a NUL byte");
            var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        /// <summary>UTF-8 bytes of s without a terminator (for pointer + length arguments).</summary>
        internal static byte[] Bytes(string s)
        {
            return Encoding.UTF8.GetBytes(s ?? "");
        }

        /// <summary>Decodes len bytes at p.</summary>
        internal static string Decode(IntPtr p, int len)
        {
            if (p == IntPtr.Zero || len == 0) return "";
            var bytes = new byte[len];
            Marshal.Copy(p, bytes, 0, len);
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>Decodes the NUL-terminated string at p (null for NULL).</summary>
        internal static string Decode(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int len = 0;
            while (Marshal.ReadByte(p, len) != 0) len++;
            return Decode(p, len);
        }

        /// <summary>Copies a string the library allocated and frees it.</summary>
        internal static string Take(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            try
            {
                return Decode(p);
            }
            finally
            {
                Native.ferrollm_string_free(p);
            }
        }

        /// <summary>Copies s into unmanaged memory (free with Marshal.FreeHGlobal); IntPtr.Zero for null.</summary>
        internal static IntPtr Alloc(string s, string what)
        {
            byte[] bytes = Encode(s, what);
            if (bytes == null) return IntPtr.Zero;
            IntPtr p = Marshal.AllocHGlobal(bytes.Length);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            return p;
        }
    }

    internal static class Check
    {
        /// <summary>Throws for a failed status, with the calling thread's message.</summary>
        internal static void Status(uint status)
        {
            if (status != 0)
                throw new FerrollmException((Ferrollm.Status)status, Utf8.Decode(Native.ferrollm_last_error()) ?? "");
        }
    }

    /// <summary>A C handle owned by a SafeHandle; the subclasses free it through the C API.</summary>
    internal abstract class FerrollmHandle : SafeHandle
    {
        protected FerrollmHandle() : base(IntPtr.Zero, true) { }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        internal void Set(IntPtr p)
        {
            SetHandle(p);
        }

        /// <summary>
        /// The raw pointer for one call (IntPtr.Zero once disposed, which the library refuses with
        /// its own message); pair with Release in a finally block. The reference count taken here
        /// keeps another thread's Dispose from freeing the handle during the call.
        /// </summary>
        internal IntPtr Acquire(ref bool added)
        {
            if (IsClosed || IsInvalid) return IntPtr.Zero;
            DangerousAddRef(ref added);
            return DangerousGetHandle();
        }

        internal void Release(bool added)
        {
            if (added) DangerousRelease();
        }
    }

    internal sealed class ModelHandle : FerrollmHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.ferrollm_model_free(handle);
            return true;
        }
    }

    internal sealed class SessionHandle : FerrollmHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.ferrollm_session_free(handle);
            return true;
        }
    }

    internal sealed class ConverterHandle : FerrollmHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.ferrollm_converter_free(handle);
            return true;
        }
    }

    internal sealed class QuantizerHandle : FerrollmHandle
    {
        protected override bool ReleaseHandle()
        {
            Native.ferrollm_quantizer_free(handle);
            return true;
        }
    }

    /// <summary>
    /// Carries a managed progress callback through a native call: the native delegate (kept alive
    /// by this object until the call returned) catches exceptions and cancels instead.
    /// </summary>
    internal sealed class ProgressBridge
    {
        private readonly Func<Progress, bool> callback;
        internal readonly NativeProgressFn Fn;
        internal ExceptionDispatchInfo Error;

        internal ProgressBridge(Func<Progress, bool> callback)
        {
            this.callback = callback;
            Fn = callback == null ? null : new NativeProgressFn(Call);
        }

        private bool Call(IntPtr report, IntPtr userData)
        {
            if (Error != null) return false;
            try
            {
                var p = (NativeProgress)Marshal.PtrToStructure(report, typeof(NativeProgress));
                return callback(new Progress
                {
                    Stage = Utf8.Decode(p.stage) ?? "",
                    Tensor = Utf8.Decode(p.tensor) ?? "",
                    Current = p.current,
                    Total = p.total,
                });
            }
            catch (Exception e)
            {
                Error = ExceptionDispatchInfo.Capture(e);
                return false;
            }
        }

        /// <summary>After the call: rethrows the callback's exception, else checks the status.</summary>
        internal void Finish(uint status)
        {
            GC.KeepAlive(Fn);
            if (Error != null) Error.Throw();
            Check.Status(status);
        }
    }

    /// <summary>Library-wide functions.</summary>
    public static class Library
    {
        /// <summary>The library's version ("0.1.0").</summary>
        public static string Version
        {
            get { return Utf8.Decode(Native.ferrollm_version()); }
        }

        /// <summary>The loaded library's ABI version (FERROLLM_ABI_VERSION of a matching header).</summary>
        public static uint AbiVersion
        {
            get { return Native.ferrollm_abi_version(); }
        }

        /// <summary>The ABI version this wrapper was written for.</summary>
        public const uint HeaderAbiVersion = 1;

        /// <summary>ggml's name of a type ("q4_0"); null for an unknown id.</summary>
        public static string TypeName(GgmlType type)
        {
            return Utf8.Decode(Native.ferrollm_type_name((uint)type));
        }

        /// <summary>The type named name ("q4_0", "Q4_K"), in any case.</summary>
        public static GgmlType TypeFromName(string name)
        {
            uint type;
            Check.Status(Native.ferrollm_type_from_name(Utf8.Encode(name, "name"), out type));
            return (GgmlType)type;
        }

        /// <summary>
        /// Converts the Hugging Face model folder hfDir into output in one call (Converter.Open,
        /// Convert, Dispose) and returns the path written.
        /// </summary>
        public static string Convert(string hfDir, string output, ConvertParams parameters = null,
            Func<Progress, bool> progress = null)
        {
            using (Converter c = Converter.Open(hfDir))
            {
                return c.Convert(output, parameters, progress);
            }
        }

        /// <summary>
        /// Quantizes source (an F32/F16/BF16 model file) to type in one call (llm-rs'
        /// Model.quantize). destination is a file path, a folder, or null for the source's folder
        /// (the name then follows llm-rs' rules). Returns the path written; an existing target is
        /// kept and its path returned. progress may be null; returning false from it cancels
        /// (FerrollmException with Status.Cancelled, no file left).
        /// </summary>
        public static string Quantize(string source, string destination, GgmlType type,
            Container container = Container.Gguf, Func<Progress, bool> progress = null)
        {
            byte[] src = Utf8.Encode(source, "source");
            byte[] dst = Utf8.Encode(destination, "destination");
            var bridge = new ProgressBridge(progress);
            IntPtr written;
            uint st = Native.ferrollm_quantize(src, dst, (uint)type, (uint)container, bridge.Fn,
                IntPtr.Zero, out written);
            string path = Utf8.Take(written);
            bridge.Finish(st);
            return path;
        }
    }

    /// <summary>Settings of a conversion; a new object holds the library's defaults (GGUF, F16).</summary>
    public sealed class ConvertParams
    {
        public ConvertParams()
        {
            NativeConvertParams p;
            Check.Status(Native.ferrollm_convert_default_params(out p));
            Container = (Container)p.container;
            DType = (GgmlType)p.dtype;
        }

        public Container Container { get; set; }
        /// <summary>Type of the weight matrices: GgmlType.F16 or GgmlType.F32.</summary>
        public GgmlType DType { get; set; }
    }

    /// <summary>
    /// An opened Hugging Face model folder (config.json, safetensors, tokenizer.json), ready to
    /// convert (llm-rs' AutoConverter). Owns a ferrollm_converter; use from one thread at a time.
    /// </summary>
    public sealed class Converter : IDisposable
    {
        private readonly ConverterHandle handle;

        private Converter(ConverterHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>
        /// Opens hfDir and detects its architecture from config.json; an unsupported one throws
        /// Status.Unsupported with the list of supported ones.
        /// </summary>
        public static Converter Open(string hfDir)
        {
            byte[] dir = Utf8.Encode(hfDir, "hf_dir");
            var h = new ConverterHandle();
            IntPtr p;
            Check.Status(Native.ferrollm_converter_open(dir, out p));
            h.Set(p);
            return new Converter(h);
        }

        /// <summary>Opens hfDir as architecture arch, whatever its config.json says.</summary>
        public static Converter OpenAs(string hfDir, Arch arch)
        {
            byte[] dir = Utf8.Encode(hfDir, "hf_dir");
            var h = new ConverterHandle();
            IntPtr p;
            Check.Status(Native.ferrollm_converter_open_as(dir, (uint)arch, out p));
            h.Set(p);
            return new Converter(h);
        }

        /// <summary>The architecture detected (or given).</summary>
        public Arch Arch
        {
            get
            {
                bool added = false;
                try
                {
                    uint arch;
                    Check.Status(Native.ferrollm_converter_arch(handle.Acquire(ref added), out arch));
                    return (Arch)arch;
                }
                finally
                {
                    handle.Release(added);
                }
            }
        }

        /// <summary>
        /// Converts into output (a file path, or a folder where llm-rs' name "model-f16.gguf" is
        /// used) and returns the path written. Cancelling through progress throws
        /// Status.Cancelled; nothing is left behind on failure.
        /// </summary>
        public string Convert(string output, ConvertParams parameters = null, Func<Progress, bool> progress = null)
        {
            byte[] cout = Utf8.Encode(output, "out");
            NativeConvertParams p;
            Check.Status(Native.ferrollm_convert_default_params(out p));
            if (parameters != null)
            {
                p.container = (uint)parameters.Container;
                p.dtype = (uint)parameters.DType;
            }
            var bridge = new ProgressBridge(progress);
            bool added = false;
            IntPtr written = IntPtr.Zero;
            uint st;
            try
            {
                st = Native.ferrollm_converter_convert(handle.Acquire(ref added), cout, ref p, bridge.Fn,
                    IntPtr.Zero, out written);
            }
            finally
            {
                handle.Release(added);
            }
            string path = Utf8.Take(written);
            bridge.Finish(st);
            return path;
        }

        /// <summary>Frees the converter; calling it again does nothing.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }

    /// <summary>
    /// An opened source model, ready to be quantized (llm-rs' AutoQuantizer). Owns a
    /// ferrollm_quantizer; use from one thread at a time.
    /// </summary>
    public sealed class Quantizer : IDisposable
    {
        private readonly QuantizerHandle handle;

        private Quantizer(QuantizerHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>Opens source; an already quantized source throws Status.Unsupported.</summary>
        public static Quantizer Open(string source)
        {
            byte[] src = Utf8.Encode(source, "source");
            var h = new QuantizerHandle();
            IntPtr p;
            Check.Status(Native.ferrollm_quantizer_open(src, out p));
            h.Set(p);
            return new Quantizer(h);
        }

        /// <summary>Quantizes to type; destination as for Library.Quantize. May be called again.</summary>
        public string Quantize(string destination, GgmlType type, Container container = Container.Gguf,
            Func<Progress, bool> progress = null)
        {
            byte[] dst = Utf8.Encode(destination, "destination");
            var bridge = new ProgressBridge(progress);
            bool added = false;
            IntPtr written = IntPtr.Zero;
            uint st;
            try
            {
                IntPtr q = handle.Acquire(ref added);
                st = Native.ferrollm_quantizer_quantize(q, dst, (uint)type, (uint)container, bridge.Fn,
                    IntPtr.Zero, out written);
            }
            finally
            {
                handle.Release(added);
            }
            string path = Utf8.Take(written);
            bridge.Finish(st);
            return path;
        }

        /// <summary>Frees the quantizer; calling it again does nothing.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }

    /// <summary>Settings for Model.Load; a new object holds the library's defaults.</summary>
    public sealed class ModelParams
    {
        public ModelParams()
        {
            NativeModelParams p;
            Check.Status(Native.ferrollm_model_default_params(out p));
            Architecture = (Arch)p.architecture;
            PreferMmap = p.prefer_mmap != 0;
        }

        /// <summary>Arch.Auto, or the architecture of a file that does not name it.</summary>
        public Arch Architecture { get; set; }
        /// <summary>Map the file into memory instead of reading it.</summary>
        public bool PreferMmap { get; set; }
        /// <summary>A tokenizer.json to use instead of the file's own (null = the file's own).</summary>
        public string TokenizerPath { get; set; }
    }

    /// <summary>Basic facts about a loaded model.</summary>
    public struct ModelInfo
    {
        public Arch Arch;
        public uint NVocab;
        public uint NCtxTrain;
        public uint NEmbd;
    }

    /// <summary>
    /// A loaded model. Owns a ferrollm_model; immutable, so any number of threads may use it at
    /// once. Sessions keep what they need: a Model may be disposed before its sessions.
    /// </summary>
    public sealed class Model : IDisposable
    {
        private readonly ModelHandle handle;

        private Model(ModelHandle handle)
        {
            this.handle = handle;
        }

        /// <summary>Loads a model file (GGUF, GGJT, GGMF, GGML) or the one model file in a folder.</summary>
        public static Model Load(string path, ModelParams parameters = null)
        {
            byte[] cpath = Utf8.Encode(path, "path");
            NativeModelParams p;
            Check.Status(Native.ferrollm_model_default_params(out p));
            IntPtr tokenizer = IntPtr.Zero;
            var h = new ModelHandle();
            try
            {
                if (parameters != null)
                {
                    p.architecture = (uint)parameters.Architecture;
                    p.prefer_mmap = (byte)(parameters.PreferMmap ? 1 : 0);
                    tokenizer = Utf8.Alloc(parameters.TokenizerPath, "TokenizerPath");
                    p.tokenizer_path = tokenizer;
                }
                IntPtr m;
                Check.Status(Native.ferrollm_model_load(cpath, ref p, out m));
                h.Set(m);
            }
            finally
            {
                if (tokenizer != IntPtr.Zero) Marshal.FreeHGlobal(tokenizer);
            }
            return new Model(h);
        }

        /// <summary>Basic facts about the model.</summary>
        public ModelInfo Info
        {
            get
            {
                bool added = false;
                try
                {
                    ModelInfo i;
                    uint arch;
                    Check.Status(Native.ferrollm_model_describe(handle.Acquire(ref added), out arch,
                        out i.NVocab, out i.NCtxTrain, out i.NEmbd));
                    i.Arch = (Arch)arch;
                    return i;
                }
                finally
                {
                    handle.Release(added);
                }
            }
        }

        /// <summary>Token ids of text; with addSpecial, the tokenizer's own special tokens are added.</summary>
        public uint[] Tokenize(string text, bool addSpecial = false)
        {
            byte[] bytes = Utf8.Bytes(text);
            bool added = false;
            try
            {
                IntPtr m = handle.Acquire(ref added);
                UIntPtr n;
                uint st = Native.ferrollm_tokenize(m, bytes, (UIntPtr)bytes.Length, addSpecial, null,
                    UIntPtr.Zero, out n);
                if (st != (uint)Status.BufferTooSmall) Check.Status(st);
                var tokens = new uint[(int)n];
                if (tokens.Length == 0) return tokens;
                Check.Status(Native.ferrollm_tokenize(m, bytes, (UIntPtr)bytes.Length, addSpecial, tokens,
                    (UIntPtr)tokens.Length, out n));
                if ((int)n != tokens.Length) Array.Resize(ref tokens, (int)n);
                return tokens;
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>The text of tokens.</summary>
        public string Detokenize(uint[] tokens)
        {
            bool added = false;
            try
            {
                IntPtr text;
                Check.Status(Native.ferrollm_detokenize(handle.Acquire(ref added), tokens,
                    (UIntPtr)(tokens == null ? 0 : tokens.Length), out text));
                return Utf8.Take(text);
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>A new session over this model; parameters may be null for the defaults.</summary>
        public Session NewSession(SessionParams parameters = null)
        {
            NativeSessionParams p;
            Check.Status(Native.ferrollm_session_default_params(out p));
            if (parameters != null)
            {
                p.threads = parameters.Threads;
                p.batch_size = parameters.BatchSize;
                p.context_length = parameters.ContextLength;
                p.kv_type = (uint)parameters.KvType;
                p.rope_frequency_scale = parameters.RopeFrequencyScale;
                p.rope_frequency_base = parameters.RopeFrequencyBase;
            }
            bool added = false;
            var h = new SessionHandle();
            try
            {
                IntPtr m = handle.Acquire(ref added);
                IntPtr s;
                Check.Status(Native.ferrollm_session_new(m, ref p, out s));
                h.Set(s);
                uint arch, nVocab, nCtx, nEmbd;
                Check.Status(Native.ferrollm_model_describe(m, out arch, out nVocab, out nCtx, out nEmbd));
                return new Session(h, (int)nVocab, (int)nEmbd);
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>Frees the model; calling it again does nothing.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }

    /// <summary>Settings for Model.NewSession; a new object holds the library's defaults.</summary>
    public sealed class SessionParams
    {
        public SessionParams()
        {
            NativeSessionParams p;
            Check.Status(Native.ferrollm_session_default_params(out p));
            Threads = p.threads;
            BatchSize = p.batch_size;
            ContextLength = p.context_length;
            KvType = (KvType)p.kv_type;
            RopeFrequencyScale = p.rope_frequency_scale;
            RopeFrequencyBase = p.rope_frequency_base;
        }

        /// <summary>Worker threads; 0 = one per core.</summary>
        public uint Threads { get; set; }
        public uint BatchSize { get; set; }
        /// <summary>0 = the model's training context.</summary>
        public uint ContextLength { get; set; }
        public KvType KvType { get; set; }
        /// <summary>0 = the model's.</summary>
        public float RopeFrequencyScale { get; set; }
        /// <summary>0 = the model's.</summary>
        public float RopeFrequencyBase { get; set; }
    }

    /// <summary>Settings of one generation; a new object holds the library's defaults.</summary>
    public sealed class GenerateParams
    {
        public GenerateParams()
        {
            NativeGenerateParams p;
            Check.Status(Native.ferrollm_generate_default_params(out p));
            TopK = p.top_k;
            TopP = p.top_p;
            Temperature = p.temperature;
            RepetitionPenalty = p.repetition_penalty;
            RepetitionPenaltyLastN = p.repetition_penalty_last_n;
            Seed = p.seed;
            MaxNewTokens = p.max_new_tokens;
            StopWords = new List<string>();
        }

        /// <summary>0 = all.</summary>
        public uint TopK { get; set; }
        public float TopP { get; set; }
        /// <summary>0 = greedy.</summary>
        public float Temperature { get; set; }
        /// <summary>1 = off.</summary>
        public float RepetitionPenalty { get; set; }
        public uint RepetitionPenaltyLastN { get; set; }
        public ulong Seed { get; set; }
        /// <summary>0 = until the end token or a full context.</summary>
        public uint MaxNewTokens { get; set; }
        public List<string> StopWords { get; set; }
    }

    /// <summary>The result of a generation, copied out of the library's ferrollm_generation.</summary>
    public sealed class Generation
    {
        public string Text { get; internal set; }
        public uint[] Tokens { get; internal set; }
        public StopReason StopReason { get; internal set; }
        public int PromptTokens { get; internal set; }
        public double PromptMs { get; internal set; }
        public double GenerationMs { get; internal set; }
        public double TotalMs { get; internal set; }
    }

    /// <summary>
    /// A KV cache and sampler state over a model. Owns a ferrollm_session; use from one thread at
    /// a time (give each thread its own).
    /// </summary>
    public sealed class Session : IDisposable
    {
        private readonly SessionHandle handle;
        private readonly int nVocab;
        private readonly int nEmbd;

        internal Session(SessionHandle handle, int nVocab, int nEmbd)
        {
            this.handle = handle;
            this.nVocab = nVocab;
            this.nEmbd = nEmbd;
        }

        /// <summary>
        /// Continues prompt after whatever the session holds, calling onPiece (may be null) with
        /// each new piece of text. onPiece returning false stops generation; that is not an error:
        /// the result's StopReason is Cancelled. An exception thrown by onPiece stops generation
        /// and is rethrown.
        /// </summary>
        public Generation Generate(string prompt, GenerateParams parameters = null, Func<string, bool> onPiece = null)
        {
            byte[] cprompt = Utf8.Encode(prompt, "prompt");
            NativeGenerateParams p;
            Check.Status(Native.ferrollm_generate_default_params(out p));
            var words = new List<IntPtr>();
            IntPtr array = IntPtr.Zero;
            ExceptionDispatchInfo error = null;
            NativePieceFn native = null;
            if (onPiece != null)
            {
                native = delegate (IntPtr piece, UIntPtr len, IntPtr userData)
                {
                    if (error != null) return false;
                    try
                    {
                        return onPiece(Utf8.Decode(piece, (int)len));
                    }
                    catch (Exception e)
                    {
                        error = ExceptionDispatchInfo.Capture(e);
                        return false;
                    }
                };
            }
            bool added = false;
            IntPtr result = IntPtr.Zero;
            try
            {
                if (parameters != null)
                {
                    p.top_k = parameters.TopK;
                    p.top_p = parameters.TopP;
                    p.temperature = parameters.Temperature;
                    p.repetition_penalty = parameters.RepetitionPenalty;
                    p.repetition_penalty_last_n = parameters.RepetitionPenaltyLastN;
                    p.seed = parameters.Seed;
                    p.max_new_tokens = parameters.MaxNewTokens;
                    if (parameters.StopWords != null && parameters.StopWords.Count > 0)
                    {
                        foreach (string w in parameters.StopWords) words.Add(Utf8.Alloc(w, "stop word"));
                        array = Marshal.AllocHGlobal(IntPtr.Size * words.Count);
                        Marshal.Copy(words.ToArray(), 0, array, words.Count);
                        p.stop_words = array;
                        p.n_stop_words = (UIntPtr)words.Count;
                    }
                }
                IntPtr s = handle.Acquire(ref added);
                uint st = Native.ferrollm_session_generate(s, cprompt, ref p, native, IntPtr.Zero, out result);
                GC.KeepAlive(native);
                if (error != null) error.Throw();
                Check.Status(st);
                return Read(result);
            }
            finally
            {
                Native.ferrollm_generation_free(result);
                handle.Release(added);
                foreach (IntPtr w in words) Marshal.FreeHGlobal(w);
                if (array != IntPtr.Zero) Marshal.FreeHGlobal(array);
            }
        }

        private static Generation Read(IntPtr result)
        {
            var g = new Generation { Text = Utf8.Decode(Native.ferrollm_generation_text(result)) };
            IntPtr tokens;
            UIntPtr n;
            Check.Status(Native.ferrollm_generation_tokens(result, out tokens, out n));
            var ids = new int[(int)n];
            if (ids.Length > 0) Marshal.Copy(tokens, ids, 0, ids.Length);
            g.Tokens = Array.ConvertAll(ids, id => (uint)id);
            uint reason;
            UIntPtr nPrompt;
            double pms, gms, tms;
            Check.Status(Native.ferrollm_generation_info(result, out reason, out nPrompt, out pms, out gms, out tms));
            g.StopReason = (StopReason)reason;
            g.PromptTokens = (int)nPrompt;
            g.PromptMs = pms;
            g.GenerationMs = gms;
            g.TotalMs = tms;
            return g;
        }

        /// <summary>
        /// Feeds tokens after those already in the session; returns logits per mode: none, the
        /// last token's n_vocab floats, or tokens.Length × n_vocab floats.
        /// </summary>
        public float[] Eval(uint[] tokens, LogitsMode mode = LogitsMode.Last)
        {
            int cap = mode == LogitsMode.All ? tokens.Length * nVocab : mode == LogitsMode.Last ? nVocab : 0;
            var logits = new float[cap];
            bool added = false;
            try
            {
                UIntPtr n;
                Check.Status(Native.ferrollm_session_eval(handle.Acquire(ref added), tokens, (UIntPtr)tokens.Length,
                    (uint)mode, logits, (UIntPtr)cap, out n));
                if ((int)n != cap) Array.Resize(ref logits, (int)n);
                return logits;
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>The embedding of text (n_embd floats); resets the session.</summary>
        public float[] Embed(string text)
        {
            byte[] bytes = Utf8.Bytes(text);
            var e = new float[nEmbd];
            bool added = false;
            try
            {
                UIntPtr n;
                Check.Status(Native.ferrollm_session_embed(handle.Acquire(ref added), bytes, (UIntPtr)bytes.Length,
                    e, (UIntPtr)e.Length, out n));
                if ((int)n != e.Length) Array.Resize(ref e, (int)n);
                return e;
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>Forgets every token fed.</summary>
        public void Reset()
        {
            bool added = false;
            try
            {
                Check.Status(Native.ferrollm_session_reset(handle.Acquire(ref added)));
            }
            finally
            {
                handle.Release(added);
            }
        }

        /// <summary>Frees the session; calling it again does nothing.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }
}
