// gobranch: a plain grpc-go branch server, as every go-zero service is one. It answers every
// unary method with an empty success (or, for methods named in -fail, with Aborted = dtm's
// FAILURE), taking the request bytes raw, and counts the calls it served.
//
// Built offline from Debian's golang-go and golang-google-grpc-dev in GOPATH mode:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o gobranch ./tools/branch-servers/gobranch
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// rawCodec passes message bytes through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string   { return "raw" }
func (rawCodec) String() string { return "raw" }

var _ encoding.Codec = rawCodec{}

func main() {
	address := flag.String("listen", "127.0.0.1:0", "address to listen on")
	failing := flag.String("fail", "", "comma-separated method names answered with Aborted")
	flag.Parse()
	fail := map[string]bool{}
	for _, name := range strings.Split(*failing, ",") {
		if name != "" {
			fail[name] = true
		}
	}
	var served int64
	handler := func(_ interface{}, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		var request []byte
		if err := stream.RecvMsg(&request); err != nil {
			return err
		}
		atomic.AddInt64(&served, 1)
		if fail[method[strings.LastIndex(method, "/")+1:]] {
			return status.Error(codes.Aborted, "FAILURE")
		}
		response := []byte{}
		return stream.SendMsg(&response)
	}
	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer(grpc.CustomCodec(rawCodec{}), grpc.UnknownServiceHandler(handler))
	fmt.Printf("listening on %s\n", listener.Addr())
	os.Stdout.Sync()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.GracefulStop()
	}()
	if err := server.Serve(listener); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("served %d calls\n", atomic.LoadInt64(&served))
}
