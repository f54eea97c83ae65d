# Worker runtime unit test (included from tests/CMakeLists.txt): a real ROUTER plays the broker.
add_executable(test_worker_runtime ${CMAKE_CURRENT_LIST_DIR}/test_worker_runtime.cpp)
if(TARGET sluice_doctest_main)
  target_link_libraries(test_worker_runtime PRIVATE sluice_doctest_main)
else()
  target_compile_definitions(test_worker_runtime PRIVATE DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN)
endif()
target_link_libraries(test_worker_runtime PRIVATE sluice_native_tasks)
add_test(NAME worker_runtime COMMAND test_worker_runtime)
# The suite takes ~6 s (timeouts are whole seconds); the bound catches a hang, not slowness.
set_tests_properties(worker_runtime PROPERTIES TIMEOUT 60)
