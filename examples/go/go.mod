module github.com/ferrollm/ferrollm/examples/go

go 1.19

require github.com/ferrollm/ferrollm/bindings/go v0.0.0

replace github.com/ferrollm/ferrollm/bindings/go => ../../bindings/go
