/* store_redis_lua.h - the Lua scripts of store_redis.c, one atomic unit of
 * work each (Redis runs a script without interleaving other commands). Key
 * names and types: docs/cluster.md. Every script takes the epoch the caller
 * believes in as ARGV[1] and refuses with "EPOCH" when the shard's differs
 * (the shard was wiped: its seqs restarted), so no write lands in a new
 * epoch under an old one. Included by store_redis_shard.c only. */
#ifndef GW_STORE_REDIS_LUA_H
#define GW_STORE_REDIS_LUA_H

#define LUA_EPOCH_CHECK                                                                                      \
	"if redis.call('GET','gw:epoch') ~= ARGV[1] then return redis.error_reply('EPOCH') end\n"

#define LUA_MATCH                                                                                            \
	"local function m1(p,c) if p=='*' then return true end\n"                                            \
	" if string.sub(p,-1)=='*' then local pre=string.sub(p,1,-2) return string.sub(c,1,#pre)==pre end\n" \
	" return p==c end\n"                                                                                 \
	"local function vis(pats,f,c) if f and not m1(f,c) then return false end\n"                          \
	" for _,p in ipairs(pats) do if m1(p,c) then return true end end return false end\n"

/* ARGV: epoch, now, ttl, n, consumer ('' none), then n x (keyhex|'', inst,
 * trace, received_ms, payload). Returns n journal ids (0 for a known key),
 * then 1 when the new entries were given to `consumer` in the same step:
 * put in its pending list (XCLAIM FORCE) and the group's last-delivered id
 * moved past them, so no XREADGROUP hands them to anyone; a dead node's
 * are taken over by XAUTOCLAIM after claim_after like any claimed entry.
 * Only when the group had delivered everything before them (XREADGROUP
 * ">" reads in id order: skipping an older undelivered entry would lose
 * it), else 0 and the entries wait for a claim as before. */
static const char lua_journal[] = LUA_EPOCH_CHECK
	"local now,ttl,n,who=tonumber(ARGV[2]),tonumber(ARGV[3]),tonumber(ARGV[4]),ARGV[5]\n"
	"local out,seen,new,i={}, {}, {}, 6\n"
	"local own=false\n"
	"if who~='' then\n"
	" local gs=redis.pcall('XINFO','GROUPS','gw:journal')\n"
	" if type(gs)=='table' then for _,g in ipairs(gs) do local nm,ld\n"
	"  for k=1,#g,2 do if g[k]=='name' then nm=g[k+1] elseif g[k]=='last-delivered-id' then ld=g[k+1] end end\n"
	"  if nm=='gw' and ld then local top=tonumber(redis.call('GET','gw:jid') or '0')\n"
	"   own=tonumber(string.match(ld,'%-(%d+)$') or '-1')>=top end end end\n"
	"end\n"
	"for e=1,n do\n"
	" local key=ARGV[i] local dup=false\n"
	" if key~='' then\n"
	"  if seen[key] then dup=true else\n"
	"   local v=redis.call('GET','gw:k:'..key)\n"
	"   if v and tonumber(v)>now then dup=true end end\n"
	"  if not dup then seen[key]=true\n"
	"   redis.call('SET','gw:k:'..key,now+ttl,'EX',math.max(ttl,1))\n"
	"   redis.call('ZADD','gw:keys',now+ttl,key) end\n"
	" end\n"
	" if dup then out[e]=0 else\n"
	"  local id=redis.call('INCR','gw:jid')\n"
	"  redis.call('XADD','gw:journal','0-'..id,'i',ARGV[i+1],'t',ARGV[i+2],'r',ARGV[i+3],'k',key,'p',ARGV[i+4])\n"
	"  new[#new+1]='0-'..id out[e]=id end\n"
	" i=i+5\n"
	"end\n"
	"if own and #new>0 then\n"
	" local c={'XCLAIM','gw:journal','gw',who,'0'}\n"
	" for _,id in ipairs(new) do c[#c+1]=id end\n"
	" c[#c+1]='FORCE' c[#c+1]='JUSTID' redis.call(unpack(c))\n"
	" redis.call('XGROUP','SETID','gw:journal','gw',new[#new]) end\n"
	"out[n+1]=(own and #new>0) and 1 or 0\n"
	"return out\n";

/* ARGV: epoch, now. 1 when the key is known and not expired. */
static const char lua_key_seen[] =
	LUA_EPOCH_CHECK "local v=redis.call('GET','gw:k:'..ARGV[3])\n"
			"if v and tonumber(v)>tonumber(ARGV[2]) then return 1 end return 0\n";

/* ARGV: epoch, retention, per_user, check_pending, do_done, marker_ttl, n,
 * then per event: jid, nnotes, nnotes x (ubase, seq, ctx, nid, created,
 * exp, claims, proof, channel, header). A note with a channel is PUBLISHed
 * there (header..claims..proof) in the same atomic step, so every node
 * receives a user's notifications in record order, which is seq order. Checks everything before writing anything: an event
 * no longer in the journal is not pending (2); an event whose notes this
 * shard already holds (marker) is not written twice; a seq not above the
 * user's is "SEQ" for the whole call, and with ARGV[8] = 1 (contiguous, the
 * gateway's cluster mode) so is one that does not follow it (stored + 1,
 * then + 1 per note of the call): seqs stay contiguous across nodes (a seq
 * taken by a pass that was not recorded is caught here and numbered again).
 * The refusal is "SEQ" then, per note of the call in order, its user's
 * stored seq: the caller renumbers without reading them again. Returns per
 * event 0 or 2. */
static const char lua_record[] = LUA_EPOCH_CHECK
	"local ret,cap,chk,done,mttl,n=tonumber(ARGV[2]),tonumber(ARGV[3]),ARGV[4]=='1',ARGV[5]=='1',tonumber(ARGV[6]),tonumber(ARGV[7])\n"
	"local strict,evs,i=ARGV[8]=='1',{},9\n"
	"for e=1,n do\n"
	" local jid,nn=ARGV[i],tonumber(ARGV[i+1]) local ok=1\n"
	" if chk and #redis.call('XRANGE','gw:journal','0-'..jid,'0-'..jid)==0 then ok=0 end\n"
	" if ok==1 and mttl>0 and redis.call('EXISTS','gw:ap:'..jid)==1 then ok=3 end\n"
	" evs[e]={jid=jid,first=i+2,nn=nn,ok=ok} i=i+2+nn*10\n"
	"end\n"
	"local maxs,stored,bad={},{},false\n"
	"local function st(u) local v=stored[u] if v==nil then v=tonumber(redis.call('HGET',u..':m','max') or '0') stored[u]=v end return v end\n"
	"for e=1,n do local ev=evs[e] if ev.ok==1 and not bad then\n"
	" for k=0,ev.nn-1 do local b=ev.first+k*10 local u,s=ARGV[b],tonumber(ARGV[b+1])\n"
	"  local m=maxs[u] or st(u)\n"
	"  if s<=m or (strict and s~=m+1) then bad=true break end maxs[u]=s end end end\n"
	"if bad then local t={'SEQ'}\n"
	" for e=1,n do local ev=evs[e] for k=0,ev.nn-1 do t[#t+1]=st(ARGV[ev.first+k*10]) end end\n"
	" return redis.error_reply(table.concat(t,' ')) end\n"
	"local res={}\n"
	"for e=1,n do local ev=evs[e]\n"
	" if ev.ok==1 then\n"
	"  for k=0,ev.nn-1 do local b=ev.first+k*10 local u,s=ARGV[b],ARGV[b+1]\n"
	"   local created,exp,claims=tonumber(ARGV[b+4]),tonumber(ARGV[b+5]),ARGV[b+6]\n"
	"   redis.call('ZADD',u..':z',s,s)\n"
	"   redis.call('HSET',u..':c',s,ARGV[b+2])\n"
	"   redis.call('HSET',u..':i',s,ARGV[b+3])\n"
	"   redis.call('HSET',u..':b',s,ARGV[b+4]..' '..ARGV[b+5]..' '..#claims..'\\n'..claims..ARGV[b+7])\n"
	"   redis.call('HSET',u..':m','max',s)\n"
	"   redis.call('ZADD','gw:exp',math.max(exp,created+ret),u..'|'..s)\n"
	"   if redis.call('ZCARD',u..':z')>cap then redis.call('SADD','gw:over',u) end\n"
	"   if ARGV[b+8]~='' then redis.call('PUBLISH',ARGV[b+8],ARGV[b+9]..claims..ARGV[b+7]) end\n"
	"  end\n"
	"  if mttl>0 then redis.call('SET','gw:ap:'..ev.jid,'1','EX',mttl) end\n"
	" end\n"
	" if done and ev.ok~=0 then redis.call('XACK','gw:journal','gw','0-'..ev.jid) redis.call('XDEL','gw:journal','0-'..ev.jid) end\n"
	" res[e]=(ev.ok==0) and 2 or 0\n"
	"end\n"
	"return res\n";

/* ARGV: epoch, n, jids. Per jid 1 when still in the journal. */
static const char lua_is_pending[] =
	LUA_EPOCH_CHECK "local res={}\n"
			"for e=1,tonumber(ARGV[2]) do local j=ARGV[2+e]\n"
			" res[e]=(#redis.call('XRANGE','gw:journal','0-'..j,'0-'..j)>0) and 1 or 0 end\n"
			"return res\n";

/* ARGV: epoch, n, n user bases. Per user its max seq (0: none). */
static const char lua_max_seqs[] =
	LUA_EPOCH_CHECK "local res={}\n"
			"for e=1,tonumber(ARGV[2]) do res[e]=tonumber(redis.call('HGET',ARGV[2+e]..':m','max') or '0') end\n"
			"return res\n";

/* An item as returned: {seq, ctx, id, body, read}. */
#define LUA_ITEM                                                                                             \
	"local function item(u,s) return {s,redis.call('HGET',u..':c',s),redis.call('HGET',u..':i',s),"      \
	"redis.call('HGET',u..':b',s),redis.call('SISMEMBER',u..':r',s)} end\n"

/* ARGV: epoch, ubase, after, limit, npats, pats.
 * Returns {max, oldest, recovered, more, item...}. */
static const char lua_since[] = LUA_EPOCH_CHECK LUA_MATCH LUA_ITEM
	"local u,after,limit,np=ARGV[2],tonumber(ARGV[3]),tonumber(ARGV[4]),tonumber(ARGV[5])\n"
	"local pats={} for k=1,np do pats[k]=ARGV[5+k] end\n"
	"local max=tonumber(redis.call('HGET',u..':m','max') or '0')\n"
	"local purged=tonumber(redis.call('HGET',u..':m','purged') or '0')\n"
	"local first=redis.call('ZRANGE',u..':z',0,0)\n"
	"local oldest=max+1 if #first>0 then oldest=tonumber(first[1]) end\n"
	"local rec=(after<=max and after>=purged) and 1 or 0\n"
	"local out={max,oldest,rec,0}\n"
	"if rec==1 then local cnt=0\n"
	" for _,s in ipairs(redis.call('ZRANGEBYSCORE',u..':z','('..after,'+inf')) do\n"
	"  if vis(pats,nil,redis.call('HGET',u..':c',s)) then\n"
	"   if cnt==limit then out[4]=1 break end\n"
	"   cnt=cnt+1 out[#out+1]=item(u,s) end end end\n"
	"return out\n";

/* ARGV: epoch, ubase, before (0: newest), limit, filter ('' none), hasfilter, npats, pats.
 * Returns {max, unread, more, item...}, newest first. */
static const char lua_inbox[] = LUA_EPOCH_CHECK LUA_MATCH LUA_ITEM
	"local u,before,limit,np=ARGV[2],tonumber(ARGV[3]),tonumber(ARGV[4]),tonumber(ARGV[7])\n"
	"local f=nil if ARGV[6]=='1' then f=ARGV[5] end\n"
	"local pats={} for k=1,np do pats[k]=ARGV[7+k] end\n"
	"local out={tonumber(redis.call('HGET',u..':m','max') or '0'),0,0}\n"
	"local ctx=redis.call('HGETALL',u..':c') local c={}\n"
	"for k=1,#ctx,2 do c[ctx[k]]=ctx[k+1] end\n"
	"local unread,cnt=0,0\n"
	"for _,s in ipairs(redis.call('ZREVRANGE',u..':z',0,-1)) do\n"
	" if vis(pats,f,c[s]) then\n"
	"  if redis.call('SISMEMBER',u..':r',s)==0 then unread=unread+1 end\n"
	"  if before==0 or tonumber(s)<before then\n"
	"   if cnt==limit then out[3]=1 else cnt=cnt+1 out[#out+1]=item(u,s) end end end end\n"
	"out[2]=unread return out\n";

/* ARGV: epoch, ubase, filter, hasfilter, npats, pats. Unread count. */
static const char lua_unread[] = LUA_EPOCH_CHECK LUA_MATCH
	"local u,np=ARGV[2],tonumber(ARGV[5]) local f=nil if ARGV[4]=='1' then f=ARGV[3] end\n"
	"local pats={} for k=1,np do pats[k]=ARGV[5+k] end\n"
	"local ctx=redis.call('HGETALL',u..':c') local n=0\n"
	"for k=1,#ctx,2 do if vis(pats,f,ctx[k+1]) and redis.call('SISMEMBER',u..':r',ctx[k])==0 then n=n+1 end end\n"
	"return n\n";

/* ARGV: epoch, ubase, read, all ('1': every note; ids ignored), filter,
 * hasfilter, npats, pats, nids, ids. Returns {unread, id, ctx, id, ctx, ...}
 * for the notes whose state changed. */
static const char lua_mark[] = LUA_EPOCH_CHECK LUA_MATCH
	"local u,rd,all,np=ARGV[2],ARGV[3]=='1',ARGV[4]=='1',tonumber(ARGV[7])\n"
	"local f=nil if ARGV[6]=='1' then f=ARGV[5] end\n"
	"local pats={} for k=1,np do pats[k]=ARGV[7+k] end\n"
	"local want={} local ni=tonumber(ARGV[8+np])\n"
	"for k=1,ni do want[ARGV[8+np+k]]=true end\n"
	"local ids=redis.call('HGETALL',u..':i') local out={0}\n"
	"for k=1,#ids,2 do local s,id=ids[k],ids[k+1]\n"
	" if all or want[id] then local c=redis.call('HGET',u..':c',s)\n"
	"  if vis(pats,f,c) then\n"
	"   if rd then if redis.call('SADD',u..':r',s)==1 then out[#out+1]=id out[#out+1]=c end\n"
	"   else if redis.call('SREM',u..':r',s)==1 then out[#out+1]=id out[#out+1]=c end end end end end\n"
	"local ctx=redis.call('HGETALL',u..':c') local n=0\n"
	"for k=1,#ctx,2 do if vis(pats,f,ctx[k+1]) and redis.call('SISMEMBER',u..':r',ctx[k])==0 then n=n+1 end end\n"
	"out[1]=n return out\n";

/* ARGV: epoch, now, max_rows, per_user. Returns {expired, over_cap, keys, more}. */
static const char lua_purge[] = LUA_EPOCH_CHECK
	"local now,budget,cap=tonumber(ARGV[2]),tonumber(ARGV[3]),tonumber(ARGV[4])\n"
	"local function drop(u,s)\n"
	" redis.call('ZREM',u..':z',s) redis.call('HDEL',u..':c',s) redis.call('HDEL',u..':i',s)\n"
	" redis.call('HDEL',u..':b',s) redis.call('SREM',u..':r',s) redis.call('ZREM','gw:exp',u..'|'..s)\n"
	" local p=tonumber(redis.call('HGET',u..':m','purged') or '0')\n"
	" if tonumber(s)>p then redis.call('HSET',u..':m','purged',s) end end\n"
	"local exp,over,keys,more=0,0,0,0\n"
	"local old=redis.call('ZRANGEBYSCORE','gw:exp','-inf','('..now,'LIMIT',0,budget+1)\n"
	"for k,m in ipairs(old) do if k>budget then more=1 break end\n"
	" local bar=string.find(m,'|',1,true) drop(string.sub(m,1,bar-1),string.sub(m,bar+1)) exp=exp+1 end\n"
	"budget=budget-exp\n"
	"for _,u in ipairs(redis.call('SMEMBERS','gw:over')) do\n"
	" local x=redis.call('ZCARD',u..':z')-cap\n"
	" if x>0 and budget==0 then more=1 break end\n"
	" if x>0 then local d=math.min(x,budget)\n"
	"  for _,s in ipairs(redis.call('ZRANGE',u..':z',0,d-1)) do drop(u,s) end\n"
	"  over=over+d budget=budget-d x=x-d end\n"
	" if x<=0 then redis.call('SREM','gw:over',u) else more=1 end end\n"
	"local ks=redis.call('ZRANGEBYSCORE','gw:keys','-inf',now,'LIMIT',0,tonumber(ARGV[3])+1)\n"
	"for k,key in ipairs(ks) do if k>tonumber(ARGV[3]) then more=1 break end\n"
	" redis.call('DEL','gw:k:'..key) redis.call('ZREM','gw:keys',key) keys=keys+1 end\n"
	"return {exp,over,keys,more}\n";

#endif
