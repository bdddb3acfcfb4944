module github.com/ferrollm/ferrollm/bindings/go

go 1.19
