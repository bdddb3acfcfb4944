// The raw C API of include/ferrollm.h, as P/Invoke declarations. Internal: use the classes in
// Ferrollm.cs. Written for C# 7.2 (Mono's mcs) and .NET Standard 2.0.
//
// Marshalling rules used here (no marshaller magic, so Mono and .NET behave the same):
//  - strings in are NUL-terminated UTF-8 byte arrays made by Utf8.Encode (byte[] is blittable and
//    pinned for the call); strings out are IntPtr, decoded by Utf8.Decode;
//  - C `bool` returns and callback results are one byte: MarshalAs(UnmanagedType.I1);
//  - handles are IntPtr, taken from the SafeHandle subclasses for the duration of one call;
//  - parameter structs are blittable mirrors of the C structs, passed by reference.

using System;
using System.Runtime.InteropServices;

namespace Ferrollm
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.I1)]
    internal delegate bool NativePieceFn(IntPtr piece, UIntPtr len, IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.I1)]
    internal delegate bool NativeProgressFn(IntPtr progress, IntPtr userData);

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeConvertParams
    {
        public uint struct_size;
        public uint container;
        public uint dtype;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeModelParams
    {
        public uint struct_size;
        public uint architecture;
        public byte prefer_mmap; // C bool
        public IntPtr tokenizer_path;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeSessionParams
    {
        public uint struct_size;
        public uint threads;
        public uint batch_size;
        public uint context_length;
        public uint kv_type;
        public float rope_frequency_scale;
        public float rope_frequency_base;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeGenerateParams
    {
        public uint struct_size;
        public uint top_k;
        public float top_p;
        public float temperature;
        public float repetition_penalty;
        public uint repetition_penalty_last_n;
        public ulong seed;
        public uint max_new_tokens;
        public IntPtr stop_words;
        public UIntPtr n_stop_words;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeProgress
    {
        public uint struct_size;
        public IntPtr stage;
        public IntPtr tensor;
        public ulong current;
        public ulong total;
    }

    internal static class Native
    {
        private const string Lib = "ferrollm";

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr ferrollm_last_error();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr ferrollm_status_name(uint status);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr ferrollm_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_abi_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_string_free(IntPtr s);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr ferrollm_type_name(uint type);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_type_from_name(byte[] name, out uint type);

        // Conversion

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_convert_default_params(out NativeConvertParams p);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_converter_open(byte[] hfDir, out IntPtr converter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_converter_open_as(byte[] hfDir, uint arch, out IntPtr converter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_converter_arch(IntPtr converter, out uint arch);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_converter_convert(IntPtr converter, byte[] output,
            ref NativeConvertParams p, NativeProgressFn progress, IntPtr userData, out IntPtr writtenPath);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_converter_free(IntPtr converter);

        // Models

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_model_default_params(out NativeModelParams p);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_model_load(byte[] path, ref NativeModelParams p, out IntPtr model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_model_free(IntPtr model);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_model_describe(IntPtr model, out uint arch, out uint nVocab,
            out uint nCtxTrain, out uint nEmbd);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_tokenize(IntPtr model, byte[] text, UIntPtr len,
            [MarshalAs(UnmanagedType.I1)] bool addSpecial, uint[] tokens, UIntPtr cap, out UIntPtr n);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_detokenize(IntPtr model, uint[] tokens, UIntPtr n, out IntPtr text);

        // Sessions

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_default_params(out NativeSessionParams p);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_new(IntPtr model, ref NativeSessionParams p, out IntPtr session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_session_free(IntPtr session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_reset(IntPtr session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_eval(IntPtr session, uint[] tokens, UIntPtr n, uint mode,
            float[] logits, UIntPtr cap, out UIntPtr nOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_embed(IntPtr session, byte[] text, UIntPtr len,
            float[] embedding, UIntPtr cap, out UIntPtr nOut);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_generate_default_params(out NativeGenerateParams p);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_session_generate(IntPtr session, byte[] prompt,
            ref NativeGenerateParams p, NativePieceFn onPiece, IntPtr userData, out IntPtr result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr ferrollm_generation_text(IntPtr result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_generation_tokens(IntPtr result, out IntPtr tokens, out UIntPtr n);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_generation_info(IntPtr result, out uint stopReason,
            out UIntPtr nPromptTokens, out double promptMs, out double generationMs, out double totalMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_generation_free(IntPtr result);

        // Quantization

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_quantizer_open(byte[] source, out IntPtr quantizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_quantizer_quantize(IntPtr quantizer, byte[] destination, uint type,
            uint container, NativeProgressFn progress, IntPtr userData, out IntPtr writtenPath);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void ferrollm_quantizer_free(IntPtr quantizer);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint ferrollm_quantize(byte[] source, byte[] destination, uint type,
            uint container, NativeProgressFn progress, IntPtr userData, out IntPtr writtenPath);
    }
}
