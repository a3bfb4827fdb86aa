# Runs the MLP and the FFN block (vector ops) with --stats and --trace, then scripts/plot; checks
# the PNGs are real PNGs, and that scripts/plot refuses, with a message naming the file, a stats
# file of another SKU and a file of the wrong kind (instead of a wrong roofline or a bare KeyError).
file(MAKE_DIRECTORY ${WORK})
# Compiles examples/<graph>.json for edge, runs it with --stats and --trace into
# ${WORK}/<prefix>stats.json and <prefix>trace.json (the program: <graph>.kpu), plots both
# (the gantt with the extra arguments given) and checks they are real PNGs.
function(plot_run graph prefix)
  execute_process(COMMAND ${BIN}/kpu-compile ${SRC}/examples/${graph}.json -o ${WORK}/${graph}.kpu
                          --config ${SRC}/configs/edge.json OUTPUT_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kpu-compile ${graph} failed: ${rc}")
  endif()
  execute_process(COMMAND ${BIN}/kpu-sim --config ${SRC}/configs/edge.json --program ${WORK}/${graph}.kpu
                          --stats ${WORK}/${prefix}stats.json --trace ${WORK}/${prefix}trace.json
                  OUTPUT_QUIET RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "kpu-sim ${graph} failed: ${rc}")
  endif()
  foreach(cmd "roofline;--config;${SRC}/configs/edge.json;${WORK}/${prefix}stats.json;-o;${WORK}/${prefix}roofline.png"
              "gantt;${WORK}/${prefix}trace.json;${ARGN};-o;${WORK}/${prefix}gantt.png")
    execute_process(COMMAND /usr/bin/python3 ${SRC}/scripts/plot ${cmd} RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "scripts/plot ${cmd} failed: ${err}")
    endif()
  endforeach()
  foreach(png roofline gantt)
    file(READ ${WORK}/${prefix}${png}.png head LIMIT 8 HEX)
    if(NOT head STREQUAL "89504e470d0a1a0a")
      message(FATAL_ERROR "${prefix}${png}.png is not a PNG (starts with ${head})")
    endif()
    file(SIZE ${WORK}/${prefix}${png}.png size)
    if(size LESS 10000)
      message(FATAL_ERROR "${prefix}${png}.png is only ${size} bytes")
    endif()
  endforeach()
endfunction()
plot_run(mlp "")
# A run with vector ops: its roofline legend gives the vector engines' rate, and a gantt of a
# few rows keeps a vector engine's row (it takes the row of a kind with several).
plot_run(ffn_block ffn- --max-tracks 6)

# Refusals: exit code non-zero, one line saying which file is wrong and why, no PNG written.
function(expect_refusal expected)
  file(REMOVE ${WORK}/refused.png)
  execute_process(COMMAND /usr/bin/python3 ${SRC}/scripts/plot ${ARGN} -o ${WORK}/refused.png
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "scripts/plot ${ARGN} should have refused but exited 0: ${out}")
  endif()
  if(NOT err MATCHES "^scripts/plot: error: [^\n]*${expected}[^\n]*\n$")
    message(FATAL_ERROR "scripts/plot ${ARGN}: expected one line matching '${expected}', got: ${err}")
  endif()
  if(EXISTS ${WORK}/refused.png)
    message(FATAL_ERROR "scripts/plot ${ARGN} refused but still wrote refused.png")
  endif()
endfunction()
# A run on edge is not plotted on t64's roofline.
expect_refusal("stats.json is a run on 'edge', not on --config [^ ]*t64.json \\('t64'\\)"
               roofline --config ${SRC}/configs/t64.json ${WORK}/stats.json)
# Nor one whose peak differs from the config's (--set), under the same SKU name.
execute_process(COMMAND ${BIN}/kpu-sim --config ${SRC}/configs/edge.json --set fabric.rows=32 --program ${WORK}/mlp.kpu
                        --stats ${WORK}/stats-rows32.json OUTPUT_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kpu-sim --set fabric.rows=32 failed: ${rc}")
endif()
expect_refusal("stats-rows32.json is a run on 'edge' with a peak_flops of 4.096 TFLOP/s, but --config [^ ]*edge.json \\('edge'\\) has 2.048 TFLOP/s \\(made with --set fabric.rows=32\\)"
               roofline --config ${SRC}/configs/edge.json ${WORK}/stats-rows32.json)
# Nor one whose memory roof differs (a 25.6 GB/s run is not plotted on edge's 51.2 GB/s roof).
execute_process(COMMAND ${BIN}/kpu-sim --config ${SRC}/configs/edge.json --set dram.bandwidth_gb_per_s=12.8
                        --program ${WORK}/mlp.kpu --stats ${WORK}/stats-bw.json OUTPUT_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kpu-sim --set dram.bandwidth_gb_per_s=12.8 failed: ${rc}")
endif()
expect_refusal("stats-bw.json is a run on 'edge' with a roofline_bandwidth of 25.6 GB/s, but --config [^ ]*edge.json \\('edge'\\) has 51.2 GB/s \\(made with --set dram.bandwidth_gb_per_s=12.8\\)"
               roofline --config ${SRC}/configs/edge.json ${WORK}/stats-bw.json)
# A stats file from before roofline_bandwidth existed says so.
file(READ ${WORK}/stats.json stats_text)
string(REPLACE "\"roofline_bandwidth\"" "\"was_roofline_bandwidth\"" old_stats "${stats_text}")
file(WRITE ${WORK}/stats-old.json "${old_stats}")
expect_refusal("stats-old.json has no 'roofline_bandwidth': it was written by an older kpu-sim"
               roofline --config ${SRC}/configs/edge.json ${WORK}/stats-old.json)
# The wrong kind of file says which file and what kind was expected.
expect_refusal("trace.json is not a kpu-sim --stats file \\(it has no 'arithmetic_intensity'\\)"
               roofline --config ${SRC}/configs/edge.json ${WORK}/trace.json)
expect_refusal("stats.json is not a kpu-sim --trace file \\(it has no 'traceEvents'\\)"
               gantt ${WORK}/stats.json)

