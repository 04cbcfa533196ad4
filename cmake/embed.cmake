# Turns a file into a C source defining a byte array and its length.
# cmake -DINPUT=... -DOUTPUT=... -DSYMBOL=... -P embed.cmake
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUTPUT}" "/* generated from ${INPUT}; do not edit */\n#include <stddef.h>\nconst char ${SYMBOL}[] = {${body} 0};\nconst size_t ${SYMBOL}_len = ${len};\n")
