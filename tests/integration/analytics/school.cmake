# People, revenue and school operations (services/store/analytics_school.c): hand-computed
# fixture answers and incremental refresh == rebuild over a seeded random batch sequence.
cs_test(school_test SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/school_test.c
  ${CMAKE_SOURCE_DIR}/services/store/analytics_school.c
  LIBS cs_harness TIMEOUT 120 LABELS integration analytics)
if(TARGET school_test)
  target_include_directories(school_test PRIVATE ${CMAKE_SOURCE_DIR}/services/store)
  set_tests_properties(school_test PROPERTIES ENVIRONMENT "CS_BUILD_DIR=${CMAKE_BINARY_DIR}")
endif()
