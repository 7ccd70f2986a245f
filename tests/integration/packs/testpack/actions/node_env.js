let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => console.log(JSON.stringify({ runtime: "node", params: JSON.parse(input || "{}") })));
