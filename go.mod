module github.com/hybi/websocket

go 1.26
