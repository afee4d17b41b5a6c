// Drive `lexfast host` from Node: one JSON request per line on its stdin,
// one JSON reply per line (same id) on its stdout.  node examples/host_peer.mjs
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const python = process.env.LEXFAST_PYTHON || "python3";
const host = spawn(python, ["-m", "lexfast", "host", "--allow-effects", "time,random"],
                   { stdio: ["pipe", "pipe", "inherit"] });
const pending = new Map();
createInterface({ input: host.stdout }).on("line", (line) => {
  const reply = JSON.parse(line);
  pending.get(reply.id)?.(reply);
});
const call = (id, kind, op, args) => new Promise((resolve) => {
  pending.set(id, resolve);
  host.stdin.write(JSON.stringify({ id, kind, op, args }) + "\n");
});
const die = await call(1, "rand", "int_in", [1, 6]);
console.log("a die:", die.ok >= 1 && die.ok <= 6 ? "1..6" : JSON.stringify(die));
console.log(JSON.stringify(await call(2, "str", "to_upper", ["from node"])));
console.log(JSON.stringify(await call(3, "io", "print", ["not granted"])));
host.stdin.end();
