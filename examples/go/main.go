// The whole flow through the Go binding: convert a Hugging Face checkpoint folder to GGUF (F16),
// quantize it to Q4_0, load it, generate a few tokens with streaming, print the result and the
// stop reason.
//
//	go run . [CHECKPOINT_DIR] [OUT_DIR] [PROMPT]
//
// CHECKPOINT_DIR defaults to the repository's tests/fixtures/hf/gpt2: a tiny random GPT-2, so the
// text is gibberish. Run it from examples/go with GOFLAGS=-mod=mod GOPROXY=off (nothing is
// downloaded: the binding is the local module ../../bindings/go).
package main

import (
	"fmt"
	"os"

	ferrollm "github.com/ferrollm/ferrollm/bindings/go"
)

func arg(i int, def string) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return def
}

func run() error {
	checkpoint := arg(1, "../../tests/fixtures/hf/gpt2")
	outDir := arg(2, "ferrollm-flow")
	prompt := arg(3, "Hello")
	fmt.Printf("ferrollm %s (ABI %d)\n", ferrollm.Version(), ferrollm.ABIVersion())
	if err := os.MkdirAll(outDir, 0o777); err != nil {
		return err
	}

	progress := func(p ferrollm.Progress) bool {
		fmt.Fprintf(os.Stderr, "\r%s %d/%d %-40s", p.Stage, p.Current, p.Total, p.Tensor)
		if p.Current == p.Total {
			fmt.Fprintln(os.Stderr)
		}
		return true
	}

	// 1. Convert the checkpoint (architecture detected from config.json) to an F16 GGUF file in
	//    outDir; the library names the file.
	converter, err := ferrollm.OpenConverter(checkpoint)
	if err != nil {
		return err
	}
	defer converter.Close()
	arch, err := converter.Arch()
	if err != nil {
		return err
	}
	converted, err := converter.Convert(outDir, nil, progress)
	if err != nil {
		return err
	}
	fmt.Printf("converted: %s (architecture %d)\n", converted, arch)

	// 2. Quantize to Q4_0 (GGUF) into outDir.
	quantized, err := ferrollm.Quantize(converted, outDir, ferrollm.TypeQ4_0, ferrollm.ContainerGGUF, progress)
	if err != nil {
		return err
	}
	fmt.Println("quantized:", quantized)

	// 3. Load it; 4. a session and a short generation streamed to standard output.
	model, err := ferrollm.LoadModel(quantized, nil)
	if err != nil {
		return err
	}
	defer model.Close()
	session, err := model.NewSession(nil)
	if err != nil {
		return err
	}
	defer session.Close()
	params := ferrollm.DefaultGenerateParams()
	params.MaxNewTokens = 16
	fmt.Printf("prompt: %s\n--- streamed:\n", prompt)
	result, err := session.Generate(prompt, &params, func(piece string) bool {
		fmt.Print(piece)
		return true
	})
	if err != nil {
		return err
	}
	fmt.Printf("\n--- result: %s\ntokens: %d\nstop reason: %s\n", result.Text, len(result.Tokens), result.StopReason)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
