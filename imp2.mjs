const mb = (n) => (n / 1048576).toFixed(1);
const fs = await import('node:fs');
function show(label) { global.gc(); global.gc(); const m = process.memoryUsage(); const s = fs.readFileSync('/proc/self/status','utf8'); const g=(k)=>(s.match(new RegExp(k+':\\s+(\\d+)'))||[])[1]/1024; console.log(label.padEnd(40), 'rss', mb(m.rss), 'anon', g('RssAnon').toFixed(1), 'file', g('RssFile').toFixed(1), 'heapTotal', mb(m.heapTotal), 'heapUsed', mb(m.heapUsed), 'ext', mb(m.external)); }
show('base');
for (const m of process.argv.slice(2)) { await import(m); show(m); }
