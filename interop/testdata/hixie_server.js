// An echo server of websocket-driver, which speaks hixie-75, hixie-76 and
// RFC 6455, for the interop tests (hixie_test.go). It listens on 127.0.0.1
// and prints its port, then one JSON line per connection as it ends: the
// driver's close event ("close", with hybi's code and reason), or the
// client's end of TCP first ("end"). On /close?code=C&reason=R it closes
// at once instead (hybi with C and R).
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
  let reported = false;
  const report = (how, code = null, reason = null) => {
    if (reported) return;
    reported = true;
    console.log(JSON.stringify({ version: driver.version, how, code, reason }));
  };
  if (request.url.startsWith('/close?')) {
    const q = new URL(request.url, 'http://localhost').searchParams;
    driver.on('open', () => driver.close(q.get('reason'), Number(q.get('code'))));
  }
  // The server closes TCP once the closing handshake is over.
  driver.on('close', (e) => { report('close', e.code, e.reason); socket.end(); });
  // The upgraded socket is half-open: close our side when the client does.
  socket.on('end', () => { report('end'); socket.end(); });
  socket.on('error', () => {});
  driver.start();
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
