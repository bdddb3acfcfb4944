// The whole flow through the Go binding: quantize an F16 model to Q4_0, load it, generate a few
// tokens with streaming, print the result and the stop reason.
//
//	go run . [MODEL_F16] [OUT_DIR] [PROMPT]
//
// Run it from examples/go with GOFLAGS=-mod=mod GOPROXY=off (nothing is downloaded: the binding is
// the local module ../../bindings/go).
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
	source := arg(1, "gpt2-f16.gguf")
	outDir := arg(2, "ferrollm-flow")
	prompt := arg(3, "Hello")
	fmt.Printf("ferrollm %s (ABI %d)\n", ferrollm.Version(), ferrollm.ABIVersion())
	if err := os.MkdirAll(outDir, 0o777); err != nil {
		return err
	}

	// 1. Quantize to Q4_0 (GGUF) into outDir; the library names the file.
	quantized, err := ferrollm.Quantize(source, outDir, ferrollm.TypeQ4_0, ferrollm.ContainerGGUF,
		func(p ferrollm.Progress) bool {
			fmt.Fprintf(os.Stderr, "\r%s %d/%d %-40s", p.Stage, p.Current, p.Total, p.Tensor)
			if p.Current == p.Total {
				fmt.Fprintln(os.Stderr)
			}
			return true
		})
	if err != nil {
		return err
	}
	fmt.Println("quantized:", quantized)

	// 2. Load it; 3. a session and a short generation streamed to standard output.
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
