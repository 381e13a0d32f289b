// SPDX-License-Identifier: Apache-2.0
// A push-service sink for bench/push-bench.sh: answers every POST with 201
// and counts them (node's http only: it measures the broker, not a library).
// Usage: node sink.mjs PORT COUNT_FILE; rewrites COUNT_FILE after every request.
import http from 'node:http';
import { writeFileSync } from 'node:fs';

const [port, countFile] = process.argv.slice(2);
let n = 0;
const srv = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { n++; writeFileSync(countFile, `${n}\n`); res.writeHead(201).end(); });
});
srv.listen(Number(port), '127.0.0.1');
writeFileSync(countFile, '0\n');
process.on('SIGTERM', () => process.exit(0));
