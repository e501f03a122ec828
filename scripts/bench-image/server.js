// A minimal Node.js action runtime speaking the same protocol (/init with
// the action's source, /run, sentinels), for the container cold-start
// comparison in scripts/bench-image.sh. Not OpenWhisk's action-nodejs image
// (registries other than npm's cannot be reached here), but the same work a
// Node.js runtime does for a cold start: start node, load the code, run it.
const http = require("http");
const SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
// As PID 1, node ignores SIGTERM unless it handles it.
process.on("SIGTERM", () => process.exit(0));
let main = null;

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let msg;
      try {
        msg = JSON.parse(Buffer.concat(chunks).toString() || "{}");
      } catch (e) {
        return answer(res, 400, { error: String(e) });
      }
      if (req.url === "/init") {
        if (main) return answer(res, 403, { error: "Cannot initialize the action more than once." });
        const v = msg.value || {};
        main = new Function(`${v.code}\nreturn ${v.main || "main"};`)();
        return answer(res, 200, { ok: true });
      }
      if (req.url === "/run") {
        if (!main) return answer(res, 403, { error: "System not initialized." });
        const result = main(msg.value || {});
        process.stdout.write(SENTINEL + "\n");
        process.stderr.write(SENTINEL + "\n");
        return answer(res, 200, result);
      }
      answer(res, 404, { error: "not found" });
    });
  })
  .listen(Number(process.env.PORT || 8080), process.env.OW_HOST || "0.0.0.0");
