module github.com/hybi/websocket/interop

go 1.26.0

replace github.com/hybi/websocket => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/hybi/websocket v0.0.0
	github.com/lxzan/gws v1.8.9
	golang.org/x/net v0.63.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	golang.org/x/text v0.44.0 // indirect
)
