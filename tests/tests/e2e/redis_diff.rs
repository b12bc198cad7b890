//! Differential test: one command script sent over raw RESP to LumaDB and
//! to a real redis-server; the replies must be the same bytes.
//!
//! Each script line is a command split on spaces (`\s` stands for a space
//! inside an argument, `\e` for an empty argument), optionally prefixed:
//! - `~` the reply's order is unspecified: arrays, sets and maps are
//!   sorted before comparing;
//! - `?` the reply differs legitimately (randomness, ids, cursors): only
//!   its kind is compared (error or not, and the RESP type);
//! - `!` the reply is not compared at all (the command only sets state).

use lumadb_tests::resp::Value;
use lumadb_tests::server::{LumaServer, RedisServer, ServerOptions};

const SCRIPT: &str = r#"
# --- connection
PING
PING hello
ECHO hi
ECHO
SELECT 0
SELECT 16
SELECT x
DBSIZE
# --- unknown command and arity
NOSUCHCOMMAND a b
nosuch
GET
GET a b
SET a
# --- strings
SET s v
GET s
GET nokey
SET s v2 NX
SET s v3 XX
SET s2 v XX
SET s v4 GET
SET s v EX 100
TTL s
SET s v PX 100000 KEEPTTL
SET s v EX 0
SET s v EX -5
SET s v EX abc
SET s v NX XX
SET s v BADOPT
SET s v KEEPTTL
TTL s
SET s v PX 1000000
SETNX s x
SETNX s3 x
SETEX s4 100 v
SETEX s4 0 v
SETEX s4 abc v
PSETEX s5 100000 v
GETSET s new
GETSET nokey2 new
GETDEL nokey3
GETDEL s
GETEX s3
GETEX s3 EX 100
TTL s3
GETEX s3 PERSIST
TTL s3
GETEX s3 EX 10 PX 100
MSET m1 a m2 b m3 c
MSET m1
MGET m1 m2 nokey m3
MSETNX m1 x m9 y
MSETNX m8 x m9 y
MGET m8 m9
STRLEN m1
STRLEN nokey
APPEND ap abc
APPEND ap def
GET ap
GETRANGE ap 1 3
GETRANGE ap -2 -1
GETRANGE ap 10 20
GETRANGE ap x 1
SETRANGE ap 2 XY
SETRANGE ap 10 Z
GET ap
SETRANGE ap -1 Z
SETRANGE newr 3 abc
GET newr
INCR n
INCR n
INCRBY n 10
INCRBY n abc
DECR n
DECRBY n 5
INCR s3
INCRBY n 9223372036854775807
SET big 9223372036854775807
INCR big
SET neg -9223372036854775808
DECR neg
INCRBYFLOAT f 1.5
INCRBYFLOAT f 0.1
INCRBYFLOAT f abc
SET fl 3.0
INCRBYFLOAT fl 1
SET sp 10\s
INCR sp
SET lead 010
INCR lead
SET empty \e
GET empty
STRLEN empty
# --- wrong types
RPUSH wl a
GET wl
INCR wl
APPEND wl x
SET wl x GET
STRLEN wl
HGET wl f
SADD wl m
ZADD wl 1 m
LPUSH s3 x
# --- keyspace
EXISTS m1 m2 nokey m1
DEL m1 nokey
DEL m1
UNLINK m2
TYPE m3
TYPE wl
TYPE nokey
EXPIRE m3 100
TTL m3
PTTL nokey
TTL nokey
EXPIRE m3 abc
EXPIRE nokey 10
EXPIRE m3 100 NX
EXPIRE m3 200 XX
EXPIRE m3 50 GT
EXPIRE m3 300 GT
TTL m3
EXPIRE m3 100 LT
EXPIRE m3 10 NX XX
EXPIRE m3 10 BAD
PERSIST m3
PERSIST m3
TTL m3
PEXPIRE m3 100000
PERSIST nokey
EXPIREAT m3 99999999999
TTL m3
PERSIST m3
EXPIRE m3 -1
EXISTS m3
SET rn1 v
RENAME rn1 rn2
GET rn2
RENAME nokey rn3
RENAME rn2 rn2
RENAMENX rn2 s3
RENAMENX rn2 rn4
GET rn5
~KEYS *
~KEYS m*
~KEYS rn?
~KEYS rn[45]
KEYS nomatch*
DBSIZE
?RANDOMKEY
SCAN abc
SCAN 0 COUNT 0
SCAN 0 MATCH
?SCAN 0
?SCAN 0 MATCH rn* COUNT 1000
?SCAN 0 TYPE string
# --- hashes
HSET h f1 v1 f2 v2
HSET h f1 v9
HSET h f3
HSET h
HGET h f1
HGET h nof
HGET nokey f
HMGET h f1 nof f2
HMSET h a 1 b 2
HMSET h a
HSETNX h a 5
HSETNX h z 5
HLEN h
HLEN nokey
HEXISTS h a
HEXISTS h nof
HSTRLEN h f1
HINCRBY h a 10
HINCRBY h f1 1
HINCRBY h a abc
HINCRBY h new 5
HINCRBYFLOAT h a 1.5
HINCRBYFLOAT h f1 1
HINCRBYFLOAT h a abc
~HGETALL h
~HKEYS h
~HVALS h
HGETALL nokey
HDEL h f1 nof
HDEL h
HDEL nokey f
?HRANDFIELD h
?HRANDFIELD h 2
?HRANDFIELD h -2 WITHVALUES
HRANDFIELD nokey
HRANDFIELD h 0
?HSCAN h 0
HSET sh f v
HDEL sh f
EXISTS sh
HGET s3 f
# --- lists
RPUSH l a b c
LPUSH l z y
LRANGE l 0 -1
LRANGE l 1 2
LRANGE l -100 100
LRANGE l 5 1
LRANGE l a b
LRANGE nokey 0 -1
LLEN l
LLEN nokey
LINDEX l 0
LINDEX l -1
LINDEX l 99
LINDEX l x
LSET l 0 Y
LSET l 99 x
LSET nokey 0 x
LINSERT l BEFORE a ins
LINSERT l AFTER nof x
LINSERT l MIDDLE a x
LINSERT nokey BEFORE a x
LPOS l b
LPOS l nof
LPOS l b RANK -1
LPOS l b RANK 0
LPOS l b COUNT 0
RPUSH l b b
LPOS l b COUNT 2
LPOS l b MAXLEN 1
LREM l 1 b
LREM l -1 b
LREM l 0 nof
LRANGE l 0 -1
LTRIM l 1 -2
LRANGE l 0 -1
LPOP l
RPOP l
LPOP l 2
LPOP l 0
LPOP l -1
LPOP nokey
LPOP nokey 2
RPOP l 10
EXISTS l
LPUSHX l x
RPUSHX l x
RPUSH l2 1 2 3
RPOPLPUSH l2 l3
RPOPLPUSH nokey l3
LMOVE l2 l3 LEFT LEFT
LMOVE l2 l3 UP DOWN
LRANGE l3 0 -1
LMOVE l3 l3 LEFT RIGHT
LRANGE l3 0 -1
BLPOP nokey 0.01
BLPOP l2 1
BRPOP l2 nokey 0.01
BLPOP l2 -1
BLPOP l2 abc
RPUSH ml1 a b c d
RPUSH ml2 x
SET mstr v
LMPOP 1 ml1 LEFT
LMPOP 2 nokey ml1 RIGHT COUNT 2
LMPOP 2 ml2 ml1 left count 10
LMPOP 3 nokey ml1 ml2 LEFT COUNT 5
LMPOP 1 nokey LEFT
LMPOP 2 nokey mstr LEFT
LMPOP 2 mstr ml1 LEFT
LMPOP 0 ml1 LEFT
LMPOP -1 ml1 LEFT
LMPOP x ml1 LEFT
LMPOP 3 ml1 ml2 LEFT
LMPOP 99999999999999999999 ml1 LEFT
LMPOP 1 ml1 UP
LMPOP 1 ml1 MIN
LMPOP 1 ml1 LEFT COUNT
LMPOP 1 ml1 LEFT COUNT 0
LMPOP 1 ml1 LEFT COUNT -3
LMPOP 1 ml1 LEFT COUNT x
LMPOP 1 ml1 LEFT COUNT 1 COUNT 1
LMPOP 1 ml1 LEFT FOO
LMPOP 1 ml1
BLMPOP 0.01 2 nokey ml1 LEFT
BLMPOP x 1 ml1 LEFT
BLMPOP -1 1 ml1 LEFT
BLMPOP x 1 ml1 UP
BLMPOP x 1 ml1 LEFT COUNT 0
BLMPOP 0.01 0 ml1 LEFT
ZADD mz1 1 a 2 b 3 c 4 d
ZADD mz2 5 e
ZMPOP 1 mz1 MIN
ZMPOP 2 nokey mz1 MAX COUNT 2
ZMPOP 2 mz2 mz1 min count 10
ZMPOP 1 nokey MIN
ZMPOP 2 nokey mstr MIN
ZMPOP 1 ml1 MIN
ZMPOP 0 mz1 MIN
ZMPOP 2 mz1 MIN
ZMPOP 1 mz1 LEFT
ZMPOP 1 mz1 MIN COUNT 0
ZMPOP 1 mz1 MIN COUNT 1 COUNT 2
ZMPOP 1 mz1
BZMPOP 0.01 1 nokey MIN
BZMPOP x 1 nokey MIN
BZMPOP 0.01 1 nokey BAD
BZPOPMIN nokey 0.01
BZPOPMAX nokey mstr 0.01
BZPOPMIN mstr 0.01
BZPOPMIN nokey x
BZPOPMIN nokey -1
BZPOPMIN nokey 1e300
ZADD mz1 1 a 2 b
BZPOPMAX nokey mz1 0
BZPOPMIN mz1 0
BLMOVE nokey ml1 LEFT RIGHT 0.01
BLMOVE ml1 ml1 UP RIGHT 0.01
BLMOVE ml1 ml1 LEFT RIGHT x
BLMOVE ml1 ml1 LEFT RIGHT -1
RPUSH ml1 q r
BLMOVE ml1 ml3 LEFT RIGHT 0
BLMOVE ml1 mstr LEFT RIGHT 0
BRPOPLPUSH ml1 ml3 0
BRPOPLPUSH nokey ml3 0.01
BRPOPLPUSH ml1 ml3 x
LRANGE ml3 0 -1
MULTI
BLMOVE nokey ml3 LEFT LEFT 0
BRPOPLPUSH ml3 ml4 0
BLPOP nokey 0
BZPOPMIN nokey 0
LMPOP 1 ml3 RIGHT COUNT 3
BZMPOP 0 1 nokey MIN
EXEC
LPUSH s3 x
LLEN s3
# --- sets
SADD st a b c c
SADD st a
SADD st
SREM st a nof
SREM nokey a
SCARD st
SCARD nokey
SISMEMBER st b
SISMEMBER st nof
SMISMEMBER st b nof
~SMEMBERS st
SMEMBERS nokey
SADD st2 b c d
~SINTER st st2
~SUNION st st2
~SDIFF st st2
~SDIFF st2 st
SINTER st nokey
~SUNION st nokey
SINTERSTORE st3 st st2
SUNIONSTORE st4 st st2
SDIFFSTORE st5 st2 st
~SMEMBERS st3
SCARD st4
~SMEMBERS st5
SINTERSTORE st3 nokey st
EXISTS st3
SMOVE st st6 b
SMOVE st st6 nof
SMOVE nokey st6 b
~SMEMBERS st6
?SPOP st4
SPOP nokey
?SPOP st4 2
SPOP st4 0
?SRANDMEMBER st2
?SRANDMEMBER st2 2
?SRANDMEMBER st2 -5
SRANDMEMBER nokey
SRANDMEMBER st2 0
?SSCAN st2 0
SADD s3 m
SADD one x
SREM one x
EXISTS one
# --- sorted sets
ZADD z 1 a 2 b 3 c
ZADD z 1.5 a
ZADD z NX 9 a 4 d
ZADD z XX 10 a 10 e
ZADD z CH 11 a 5 f
ZADD z GT 1 a
ZADD z LT 1 a
ZADD z INCR 2 a
ZADD z INCR 2 a 3 b
ZADD z NX XX 1 a
ZADD z GT LT 1 a
ZADD z NX GT 1 a
ZADD z abc a
ZADD z 1
ZADD z nan a
ZADD z inf g -inf h
ZSCORE z a
ZSCORE z nof
ZSCORE nokey a
ZMSCORE z a nof b
ZCARD z
ZCARD nokey
ZINCRBY z 1.5 b
ZINCRBY z abc b
ZINCRBY z 1 newm
ZRANK z b
ZRANK z nof
ZREVRANK z b
ZRANK z b WITHSCORE
ZCOUNT z 1 3
ZCOUNT z (1 (3
ZCOUNT z -inf +inf
ZCOUNT z a b
ZRANGE z 0 -1
ZRANGE z 0 -1 WITHSCORES
ZRANGE z -2 -1 WITHSCORES
ZRANGE z 0 1 REV
ZRANGE z 1 3 BYSCORE
ZRANGE z (1 3 BYSCORE WITHSCORES
ZRANGE z -inf +inf BYSCORE LIMIT 1 2
ZRANGE z +inf -inf BYSCORE REV LIMIT 0 3
ZRANGE z 0 -1 LIMIT 0 1
ZRANGE z a b BYSCORE
ZRANGE z 0 -1 BYLEX
ZRANGE z 0 -1 WITHSCORES BADARG
ZRANGEBYSCORE z 2 +inf
ZRANGEBYSCORE z 2 +inf WITHSCORES LIMIT 0 2
ZREVRANGEBYSCORE z +inf 2
ZREVRANGE z 0 1
ZREVRANGE z 0 1 WITHSCORES
ZADD zl 0 a 0 b 0 c 0 d 0 e
ZRANGE zl [b (d BYLEX
ZRANGE zl - + BYLEX LIMIT 1 2
ZRANGE zl + - BYLEX REV
ZRANGE zl a b BYLEX
ZRANGEBYLEX zl (a [c
ZREVRANGEBYLEX zl [c -
ZLEXCOUNT zl - +
ZLEXCOUNT zl [b [d
ZLEXCOUNT zl b d
ZREM z a nof
ZREM nokey a
ZREMRANGEBYRANK z 0 0
ZREMRANGEBYSCORE z -inf 2
ZREMRANGEBYLEX zl [a [b
ZRANGE z 0 -1 WITHSCORES
ZRANGE zl 0 -1
ZPOPMIN z
ZPOPMAX z
ZPOPMIN z 2
ZPOPMIN nokey
ZPOPMIN z -1
ZADD zs 1 a 2 b
ZADD zs2 2 b 3 c
ZRANGE zu 0 -1 WITHSCORES
ZRANGE zi 0 -1 WITHSCORES
ZRANGESTORE zr zs 0 -1
ZRANGE zr 0 -1 WITHSCORES
?ZSCAN zs 0
ZSCORE s3 a
ZADD s3 1 a
# --- COPY, TOUCH, EXPIRETIME (keys spread over both shards)
SET cp1 v
COPY cp1 cp2
COPY cp1 cp3
COPY cp1 cp4
COPY cp1 cp5
MGET cp2 cp3 cp4 cp5
COPY cp1 cp2
SET cp2 other
COPY cp1 cp2
GET cp2
COPY cp1 cp2 REPLACE
GET cp2
COPY cp1 cp3 DB 0 REPLACE
COPY nokey cp6
EXISTS cp6
COPY cp1 cp1
COPY cp1 cp7 DB 16
COPY cp1 cp7 DB -1
COPY cp1 cp7 DB x
COPY cp1 cp7 DB 99999999999
COPY cp1 cp7 DB
COPY cp1 cp7 BADOPT
COPY cp1
EXPIREAT cp1 33177117420
COPY cp1 cp8
COPY cp1 cp9
COPY cp1 cp10
EXPIRETIME cp8
EXPIRETIME cp9
PEXPIRETIME cp10
EXPIRETIME cp2
EXPIRETIME nokey
PEXPIRETIME nokey
PEXPIRETIME cp1
EXPIRETIME
RPUSH cpl a b c
COPY cpl cpl2
COPY cpl cpl3
COPY cpl cpl4
LRANGE cpl2 0 -1
LRANGE cpl3 0 -1
LRANGE cpl4 0 -1
HSET cph f v g w
COPY cph cph2
COPY cph cph3
~HGETALL cph2
~HGETALL cph3
SADD cps x y
COPY cps cps2
COPY cps cps3
~SMEMBERS cps2
~SMEMBERS cps3
ZADD cpz 1 x 2 y
COPY cpz cpz2
COPY cpz cpz3
ZRANGE cpz2 0 -1 WITHSCORES
ZRANGE cpz3 0 -1 WITHSCORES
COPY cpz cpl REPLACE
TYPE cpl
TOUCH cp1 cp2 cp3 nokey cp4 cp5 cp1
TOUCH nokey
TOUCH
# --- LCS
SET lcs1 ohmytext
SET lcs2 mynewtext
SET lcs3 mynewtext
SET lcs4 mynewtext
LCS lcs1 lcs2
LCS lcs1 lcs3
LCS lcs1 lcs4 LEN
LCS lcs1 lcs2 IDX
LCS lcs1 lcs3 IDX WITHMATCHLEN
LCS lcs1 lcs4 IDX MINMATCHLEN 4 WITHMATCHLEN
LCS lcs1 lcs2 IDX MINMATCHLEN -1
LCS lcs1 lcs2 LEN IDX
LCS lcs1 lcs2 MINMATCHLEN
LCS lcs1 lcs2 MINMATCHLEN x
LCS lcs1 lcs2 BADOPT
LCS lcs1 nokey
LCS nokey nokey2 IDX
LCS lcs1 wl
LCS wl lcs1 BADOPT
LCS lcs1
# --- SINTERCARD
SADD sc1 a b c d
SADD sc2 b c d e
SADD sc3 c d e f
SADD sc4 c d x
SINTERCARD 2 sc1 sc2
SINTERCARD 4 sc1 sc2 sc3 sc4
SINTERCARD 4 sc1 sc2 sc3 sc4 LIMIT 1
SINTERCARD 2 sc1 sc2 LIMIT 0
SINTERCARD 2 sc1 nokey
SINTERCARD 1 sc1
SINTERCARD 2 nokey wl
SINTERCARD 2 sc1 wl
SINTERCARD 0 sc1
SINTERCARD x sc1
SINTERCARD -1 sc1
SINTERCARD 3 sc1 sc2
SINTERCARD 1 sc1 LIMIT -1
SINTERCARD 1 sc1 LIMIT x
SINTERCARD 1 sc1 LIMIT
SINTERCARD 1 sc1 sc2
SINTERCARD 1 wl BADOPT
SINTERCARD 1
# --- ZUNION ZINTER ZDIFF (+STORE), ZINTERCARD
ZADD zo1 1 a 2 b 3 c
ZADD zo2 10 b 20 c 30 d
ZADD zo3 5 c 6 d 7 e
ZADD zo4 1.5 a 2.5 c
SADD zos a d z
ZADD zoinf inf a -inf b
ZADD zoninf -inf a inf b
ZUNION 2 zo1 zo2
ZUNION 2 zo1 zo2 WITHSCORES
ZUNION 4 zo1 zo2 zo3 zo4 WITHSCORES
ZUNION 3 zo1 zo2 zo3 WEIGHTS 1 2 0.5 WITHSCORES
ZUNION 3 zo1 zo2 zo3 AGGREGATE MIN WITHSCORES
ZUNION 3 zo1 zo2 zo3 aggregate max weights 1 -1 2 withscores
ZUNION 2 zo1 zos WITHSCORES
ZUNION 2 zoinf zoninf WITHSCORES
ZUNION 1 zoinf WEIGHTS 0 WITHSCORES
ZUNION 2 nokey nokey2
ZUNION 2 zo1 nokey WITHSCORES
ZINTER 2 zo1 zo2 WITHSCORES
ZINTER 3 zo1 zo2 zo3
ZINTER 4 zo1 zo2 zo3 zo4 WITHSCORES
ZINTER 2 zo2 zo3 WEIGHTS 2 3 AGGREGATE MAX WITHSCORES
ZINTER 2 zo1 zos WITHSCORES
ZINTER 2 zo1 zo1 WITHSCORES
ZINTER 2 zo1 nokey
ZINTER 2 zoinf zoninf WITHSCORES
ZDIFF 2 zo1 zo2 WITHSCORES
ZDIFF 3 zo3 zo1 zo2
ZDIFF 2 zos zo1 WITHSCORES
ZDIFF 1 nokey
ZDIFF 2 zo1 nokey WITHSCORES
ZUNIONSTORE zod1 3 zo1 zo2 zo3 WEIGHTS 1 2 3
ZRANGE zod1 0 -1 WITHSCORES
ZINTERSTORE zod2 2 zo2 zo3 AGGREGATE MIN
ZRANGE zod2 0 -1 WITHSCORES
ZDIFFSTORE zod3 2 zo3 zo2
ZRANGE zod3 0 -1 WITHSCORES
ZUNIONSTORE zo1 2 zo1 zo4
ZRANGE zo1 0 -1 WITHSCORES
ZINTERSTORE zod3 2 zo1 nokey
EXISTS zod3
SET zod4 str
ZUNIONSTORE zod4 1 zos
TYPE zod4
ZDIFFSTORE zod4 2 zos zos
EXISTS zod4
ZINTERCARD 2 zo2 zo3
ZINTERCARD 3 zo1 zo2 zo3
ZINTERCARD 2 zo2 zo3 LIMIT 1
ZINTERCARD 2 zo2 zo3 LIMIT 0
ZINTERCARD 2 zo1 zos
ZINTERCARD 2 zo1 nokey
ZINTERCARD 1 wl
ZINTERCARD 0 zo1
ZINTERCARD x zo1
ZINTERCARD 3 zo1 zo2
ZINTERCARD 1 zo1 LIMIT -1
ZINTERCARD 1 zo1 LIMIT x
ZINTERCARD 1 zo1 WITHSCORES
ZUNION 0 zo1
ZUNION -1 zo1
ZUNION x zo1
ZUNION 3 zo1 zo2
ZUNION 2 zo1 wl
ZUNION 2 zo1 wl BADOPT
ZUNION 2 zo1 zo2 BADOPT
ZUNION 2 zo1 zo2 WEIGHTS 1
ZUNION 2 zo1 zo2 WEIGHTS 1 x
ZUNION 2 zo1 zo2 WEIGHTS 1 nan
ZUNION 2 zo1 zo2 AGGREGATE avg
ZUNION 2 zo1 zo2 AGGREGATE
ZUNION 1 zo1 LIMIT 1
ZINTER 0 zo1
ZDIFF 0 zo1
ZDIFF 1 zo1 WEIGHTS 1
ZDIFF 1 zo1 AGGREGATE SUM
ZUNIONSTORE zod5 0 zo1
ZINTERSTORE zod5 2 zo1 wl
ZDIFFSTORE zod5 1 zo1 WITHSCORES
ZUNIONSTORE zod5 1 zo1 WITHSCORES
ZUNIONSTORE zod5 1
ZUNION 1
ZINTERCARD 1
# --- ZRANDMEMBER
ZADD zr1 1 a 2 b 3 c
ZRANDMEMBER nokey
ZRANDMEMBER nokey 3
ZRANDMEMBER nokey 3 WITHSCORES
?ZRANDMEMBER zr1
ZRANDMEMBER zr1 0
ZRANDMEMBER zr1 3
ZRANDMEMBER zr1 10 WITHSCORES
?ZRANDMEMBER zr1 2
?ZRANDMEMBER zr1 -5 WITHSCORES
ZRANDMEMBER wl
ZRANDMEMBER wl 0
ZRANDMEMBER zr1 x
ZRANDMEMBER zr1 -9223372036854775808
ZRANDMEMBER zr1 9223372036854775807 WITHSCORES
ZRANDMEMBER zr1 -9223372036854775807 WITHSCORES
ZRANDMEMBER zr1 1 BADOPT
ZRANDMEMBER zr1 1 WITHSCORES x
ZRANDMEMBER
# --- the new commands inside MULTI/EXEC, keys on both shards
MULTI
COPY cp1 mx1
COPY cp1 mx2
ZUNIONSTORE mx3 2 zo2 zo3
ZINTERCARD 2 zo2 zo3
SINTERCARD 2 sc1 sc2
LCS lcs1 lcs2
TOUCH mx1 mx2 mx3
EXPIRETIME mx2
EXEC
ZRANGE mx3 0 -1 WITHSCORES
MULTI
ZUNION 0 zo1
ZRANDMEMBER zr1 3
EXEC
# --- transactions
MULTI
SET tx1 a
INCR tx2
GET tx1
EXEC
EXEC
DISCARD
MULTI
MULTI
DISCARD
MULTI
SET tx1 b
NOSUCHCMD
EXEC
GET tx1
MULTI
INCR tx1
SET tx3 c
EXEC
GET tx3
MULTI
SET txa 1
SET txb 1
INCR txa
APPEND txb x
GET txa
RENAME txa txc
GET txc
EXISTS txa
INCR txb
MSET txd 1 txe 2
MGET txd txe txc
INCRBY txd 5
DEL txd txe txc
GET txb
RPUSH txl a b
LRANGE txl 0 -1
GET txd
EXEC
WATCH tx1
UNWATCH
MULTI
WATCH tx1
DISCARD
# --- pub/sub, with no subscriber anywhere
PUBLISH nochan hello
PUBLISH onlyone
PUBSUB NUMSUB nochan other
PUBSUB NUMSUB
PUBSUB NUMPAT
PUBSUB NUMPAT extra
PUBSUB CHANNELS
PUBSUB CHANNELS no*
PUBSUB CHANNELS a b
PUBSUB HELP
PUBSUB HELP extra
PUBSUB SHARDCHANNELS
PUBSUB SHARDNUMSUB x
PUBSUB NOSUCH
PUBSUB
SUBSCRIBE
PSUBSCRIBE
UNSUBSCRIBE
PUNSUBSCRIBE
UNSUBSCRIBE never
PUNSUBSCRIBE never*
# --- server
ECHO done
CONFIG GET maxclients
CONFIG GET MaxClients
CONFIG GET MAXCLIENTS maxclients
CONFIG GET maxclient*
CONFIG GET m\axclients
CONFIG GET
CONFIG SET maxclients
CONFIG SET timeout abc
CONFIG SET timeout -1
CONFIG SET timeout 0
CONFIG GET timeout
CONFIG SET maxclients 10 timeout
CONFIG RESETSTAT x
CONFIG GET nosuchparam
COMMAND GETKEYS SET a b
COMMAND GETKEYS MSET a 1 b 2 c 3
COMMAND GETKEYS MSET a 1 b
COMMAND GETKEYS GET
COMMAND GETKEYS PING
COMMAND GETKEYS PING x
COMMAND GETKEYS GET a b
COMMAND GETKEYS NOSUCHCMD a
COMMAND GETKEYS BLPOP l1 l2 0
COMMAND GETKEYS ZUNIONSTORE dst 2 za zb WEIGHTS 1 2
COMMAND GETKEYS ZUNIONSTORE dst 3 za zb
COMMAND GETKEYS ZUNIONSTORE dst 0 za
COMMAND GETKEYS LMPOP 2 l1 l2 LEFT
COMMAND GETKEYS RENAME a b
COMMAND GETKEYS CONFIG
COMMAND GETKEYS CONFIG BOGUS
COMMAND GETKEYS CONFIG GET x
COMMAND GETKEYS CLIENT LIST
COMMAND GETKEYS PUBSUB NUMSUB a
COMMAND GETKEYS
CONFIG SET nosuchparam 1
CONFIG
CLIENT SETNAME my-name
CLIENT GETNAME
CLIENT SETNAME has\sspace
MULTI
SET resetkey 1
RESET
EXEC
CLIENT GETNAME
GET resetkey
RESET extra
CLIENT LIST TYPE bogus
CLIENT LIST ID abc
CLIENT LIST garbage
CLIENT LIST ID 999999
CLIENT LIST TYPE master
CLIENT LIST TYPE pubsub
CLIENT LIST TYPE
CLIENT NOSUCH
COMMAND NOSUCH
COMMAND INFO nosuchcommand
?COMMAND COUNT
COMMAND INFO get set
?COMMAND DOCS get
?CLIENT ID
?TIME
DBSIZE
FLUSHDB
DBSIZE
KEYS *
# --- a transaction that flushes between writes to keys on both shards
SET fx1 a
RPUSH fx2 b
WATCH fx1
MULTI
SET fx1 before
RPUSH fx2 c
FLUSHALL
SET fx3 after
LLEN fx2
EXEC
DBSIZE
GET fx3
LLEN fx2
# --- subscribed mode (RESP2): only a few commands are allowed
SUBSCRIBE diffch
PUBSUB NUMSUB diffch
PING
PING hi
GET x
PUBLISH diffch x
CLIENT LIST
NOSUCHCMD
GET
PSUBSCRIBE diff*
UNSUBSCRIBE diffch
PING
PUNSUBSCRIBE diff*
PING
PUBSUB NUMSUB diffch
SUBSCRIBE diffch
RESET
PING
PUBSUB NUMSUB diffch
"#;

/// The sorted form of a reply whose order is unspecified.
fn normalize(v: &Value) -> Value {
    v.sorted()
}

/// The kind of a reply: error (with its first word), or the RESP type.
fn kind(v: &Value) -> String {
    match v {
        Value::Error(e) => format!(
            "error {}",
            String::from_utf8_lossy(e).split(' ').next().unwrap_or_default()
        ),
        Value::Simple(_) => "simple".into(),
        Value::Int(_) => "integer".into(),
        Value::Bulk(_) => "bulk".into(),
        Value::Nil => "nil".into(),
        Value::Array(_) => "array".into(),
        other => format!("{other:?}").split('(').next().unwrap_or_default().to_string(),
    }
}

fn args_of(line: &str) -> Vec<Vec<u8>> {
    line.split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| a.replace("\\s", " ").replace("\\e", "").into_bytes())
        .collect()
}

#[test]
fn replies_match_redis_server() {
    let luma = LumaServer::start(ServerOptions::default().shards(2));
    let redis = RedisServer::start();
    let mut ours = luma.conn();
    let mut theirs = redis.conn();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (no, line) in SCRIPT.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (mode, command) = match line.as_bytes()[0] {
            b'~' | b'?' | b'!' => (line.as_bytes()[0], &line[1..]),
            _ => (b'=', line),
        };
        let args = args_of(command);
        let (our_raw, our_value) = ours.call_raw(&args);
        let (their_raw, their_value) = theirs.call_raw(&args);
        compared += 1;
        let same = match mode {
            b'=' => our_raw == their_raw,
            b'~' => normalize(&our_value) == normalize(&their_value),
            b'?' => kind(&our_value) == kind(&their_value),
            _ => true,
        };
        if !same {
            mismatches.push(format!(
                "line {}: {command}\n    lumadb: {:?}\n    redis:  {:?}",
                no + 1,
                String::from_utf8_lossy(&our_raw),
                String::from_utf8_lossy(&their_raw)
            ));
        }
    }
    assert!(compared > 300, "only {compared} commands compared");
    assert!(
        mismatches.is_empty(),
        "{} of {compared} replies differ from redis-server's:\n{}\n--- lumadb output:\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        luma.output()
    );
}

/// The same comparison under RESP3 (HELLO 3), on the commands whose RESP3
/// replies use the new types: maps, sets, doubles, nulls.
#[test]
fn resp3_replies_match_redis_server() {
    let luma = LumaServer::start(ServerOptions::default().shards(2));
    let redis = RedisServer::start();
    let mut ours = luma.conn();
    let mut theirs = redis.conn();
    let script = [
        "=HSET h a 1 b 2",
        "~HGETALL h",
        "=HGETALL nokey",
        "=SADD s x y",
        "~SMEMBERS s",
        "=ZADD z 1.5 a 2 b",
        "=ZSCORE z a",
        "=ZRANGE z 0 -1 WITHSCORES",
        "=ZINCRBY z 1 a",
        "=ZPOPMIN z",
        "=GET nokey",
        "=LPOP nokey",
        "=BLPOP nokey 0.01",
        "=RPUSH ml a b c",
        "=LMPOP 1 ml LEFT COUNT 2",
        "=LMPOP 1 nokey LEFT",
        "=BLMPOP 0.01 1 nokey RIGHT",
        "=ZADD mz 1 a 2.5 b 3 c",
        "=ZMPOP 1 mz MIN COUNT 2",
        "=ZMPOP 1 nokey MAX",
        "=BZMPOP 0.01 1 nokey MAX",
        "=BZPOPMAX mz 0",
        "=BZPOPMIN nokey 0.01",
        "=BLMOVE nokey ml LEFT LEFT 0.01",
        "=ZMSCORE z b nokey",
        "=CONFIG GET maxclients",
        "=INCRBYFLOAT f 1.5",
        "=SET s2 v",
        "=GET s2",
        "=EXISTS s2",
        "=MGET s2 nokey",
        "=SMISMEMBER s x q",
        "=LRANGE nokey 0 -1",
        "=EXEC",
        "=ZADD zo1 1 a 2 b 3 c",
        "=ZADD zo2 10 b 20 c 30 d",
        "=SADD zos a d",
        "=ZUNION 3 zo1 zo2 zos WITHSCORES",
        "=ZUNION 2 zo1 zo2",
        "=ZINTER 2 zo1 zo2 WEIGHTS 1 0.5 WITHSCORES",
        "=ZDIFF 2 zo1 zo2 WITHSCORES",
        "=ZDIFF 1 nokey WITHSCORES",
        "=ZRANDMEMBER zo1 5 WITHSCORES",
        "=ZRANDMEMBER zo1 5",
        "=ZRANDMEMBER nokey",
        "=ZINTERCARD 2 zo1 zo2",
        "=SET l1 ohmytext",
        "=SET l2 mynewtext",
        "=LCS l1 l2 IDX WITHMATCHLEN",
        "=LCS l1 l2 IDX MINMATCHLEN 3",
        "=LCS l1 l2",
        "=COPY l1 l3",
        "=EXPIRETIME l3",
        "=SINTERCARD 1 s",
        "=UNSUBSCRIBE",
        "=SUBSCRIBE r3ch",
        "=PING",
        "=GET s2",
        "=PUBSUB NUMSUB r3ch",
        "=PSUBSCRIBE r3*",
        "=UNSUBSCRIBE r3ch",
        "=PUNSUBSCRIBE",
        "=PUNSUBSCRIBE",
    ];
    let mut hello_ours = ours.call(&["HELLO", "3"]);
    let mut hello_theirs = theirs.call(&["HELLO", "3"]);
    // The server name, version and client id differ; the rest must not.
    for hello in [&mut hello_ours, &mut hello_theirs] {
        if let Value::Map(pairs) = hello {
            pairs.retain(|(k, _)| !matches!(k.text().as_deref(), Some("server" | "version" | "id" | "modules")));
        }
    }
    let mut mismatches = Vec::new();
    if hello_ours != hello_theirs {
        mismatches.push(format!(
            "HELLO 3\n    lumadb: {hello_ours:?}\n    redis:  {hello_theirs:?}"
        ));
    }
    for line in script {
        let (mode, command) = line.split_at(1);
        let args = args_of(command);
        let (our_raw, our_value) = ours.call_raw(&args);
        let (their_raw, their_value) = theirs.call_raw(&args);
        let same = match mode {
            "~" => normalize(&our_value) == normalize(&their_value),
            _ => our_raw == their_raw,
        };
        if !same {
            mismatches.push(format!(
                "{command}\n    lumadb: {:?}\n    redis:  {:?}",
                String::from_utf8_lossy(&our_raw),
                String::from_utf8_lossy(&their_raw)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} RESP3 replies differ from redis-server's:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
