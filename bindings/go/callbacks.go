package ferrollm

// The Go side of the C callbacks. A file with //export may only declare C functions in its
// preamble; the C trampolines that call these live in ferrollm.go.

/*
#include <stdint.h>
#include "ferrollm.h"
*/
import "C"

import (
	"runtime/cgo"
)

// callbackState carries a Go callback through the C library's void* user_data (as a cgo.Handle)
// and brings a panic raised inside it back to the calling goroutine: a panic must not unwind
// through C frames, so it is recovered here, the work is cancelled, and the caller re-panics after
// the C call returned.
type callbackState struct {
	piece    func(string) bool
	progress ProgressFunc
	panicked bool
	panicVal interface{}
}

// repanic re-raises a panic recovered inside the callback, after the C call returned.
func (s *callbackState) repanic() {
	if s != nil && s.panicked {
		panic(s.panicVal)
	}
}

func (s *callbackState) recoverInto(ret *C.bool) {
	if r := recover(); r != nil {
		s.panicked = true
		s.panicVal = r
		*ret = false
	}
}

//export ferrollmGoPiece
func ferrollmGoPiece(piece *C.char, n C.size_t, handle C.uintptr_t) (ret C.bool) {
	s := cgo.Handle(handle).Value().(*callbackState)
	if s.panicked {
		return false
	}
	defer s.recoverInto(&ret)
	return C.bool(s.piece(C.GoStringN(piece, C.int(n))))
}

//export ferrollmGoProgress
func ferrollmGoProgress(p *C.ferrollm_progress, handle C.uintptr_t) (ret C.bool) {
	s := cgo.Handle(handle).Value().(*callbackState)
	if s.panicked {
		return false
	}
	defer s.recoverInto(&ret)
	return C.bool(s.progress(Progress{
		Stage:   C.GoString(p.stage),
		Tensor:  C.GoString(p.tensor),
		Current: uint64(p.current),
		Total:   uint64(p.total),
	}))
}
