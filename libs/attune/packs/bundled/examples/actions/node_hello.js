// Parameters arrive as one JSON object on stdin; a JSON object printed on stdout becomes the
// execution's result (its keys merged at the top level).
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const params = input.trim() ? JSON.parse(input) : {};
  const name = params.name === undefined ? "world" : params.name;
  const greeting = `Hello, ${name}${params.excited ? "!" : "."}`;
  console.log(JSON.stringify({ greeting, node_version: process.version }));
});
