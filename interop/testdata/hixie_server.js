// An echo server of websocket-driver, which speaks hixie-75, hixie-76 and
// RFC 6455, for the interop tests (hixie_test.go). It listens on 127.0.0.1
// and prints its port, then one JSON line per closed connection.
'use strict';
const http = require('http');
const websocket = require('websocket-driver');

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
server.on('upgrade', (request, socket, body) => {
  if (!websocket.isWebSocket(request)) return socket.destroy();
  const driver = websocket.http(request, { maxLength: 1 << 20 });
  driver.io.write(body);
  socket.pipe(driver.io).pipe(socket);
  driver.messages.on('data', (m) => typeof m === 'string' ? driver.text(m) : driver.binary(m));
  let closed = false;
  const report = (code, reason) => {
    if (closed) return;
    closed = true;
    console.log(JSON.stringify({ version: driver.version, code, reason }));
  };
  driver.on('close', (e) => report(e.code, e.reason));
  socket.on('close', () => report(null, null));
  socket.on('error', () => {});
  driver.start();
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
