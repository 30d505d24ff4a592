package bpf

//go:generate go tool bpf2go -tags linux -target bpfel,bpfeb filter filter.c
