module github.com/hybi/websocket/example

go 1.26

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/hybi/websocket v0.0.0
)

replace github.com/hybi/websocket => ../
