const fs = await import('node:fs');
global.gc();
await import(process.argv[2]);
global.gc(); global.gc();
const smaps = fs.readFileSync('/proc/self/smaps','utf8').split('\n');
let cur=null; const regions=[];
for (const l of smaps) { const m=l.match(/^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/); if(m){cur={range:m[1],perm:m[3],name:m[4]||'[anon]',size:(parseInt(m[2],16)-parseInt(m[1],16))/1024,rss:0}; regions.push(cur); continue;} const r=l.match(/^Rss:\s+(\d+)/); if(r&&cur) cur.rss=+r[1]; }
const byName={}; for(const r of regions){ const k=r.name.startsWith('/')? r.name.split('/').pop(): r.name; byName[k]=(byName[k]||0)+r.rss; }
console.log(Object.entries(byName).sort((a,b)=>b[1]-a[1]).slice(0,10).map(([k,v])=>k+' '+(v/1024).toFixed(1)+'MB').join('\n'));
console.log('anon regions > 1MB rss:'); for (const r of regions.filter(r=>r.name==='[anon]'&&r.rss>1024).sort((a,b)=>b.rss-a.rss).slice(0,15)) console.log(r.range, r.perm, (r.size/1024).toFixed(1)+'MB size', (r.rss/1024).toFixed(1)+'MB rss');
